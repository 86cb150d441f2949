#!/usr/bin/env bash
# Rooms WebSocket fan-out: castmesh rooms vs a Node + Socket.IO peer (bench/peer/server.js).
# For each M in $STEPS, each repetition and each target in $TARGETS: start a fresh server on
# core $SERVER_CPU (castmesh with a temp SQLite DB), run castmesh-ws-loadgen on core
# $CLIENT_CPU (M members in one room, $ROUNDS seek rounds, then $TP_S s of pipelined seeks),
# sample the server's VmRSS before the first connect and after all members connected, stop the
# server by PID. Appends one JSON line per run to $OUT and prints a markdown table of medians.
#
#   STEPS="1000 2500 5000" REPS=3 TARGETS="castmesh peer" bench/run_rooms.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_reexec "$0" "$@"

WS_LOADGEN=${WS_LOADGEN:-$(find_bin "$REPO_DIR/build/bench/castmesh-ws-loadgen" "$REPO_DIR/build-wsbench/bench/castmesh-ws-loadgen" || true)}
# (lib.sh's CASTMESH default may be an older build without rooms; ROOMS_CASTMESH overrides.)
CASTMESH=${ROOMS_CASTMESH:-$(find_bin "$REPO_DIR/build/src/castmesh" "$REPO_DIR/build-wsbench/src/castmesh" || true)}
NODE=${NODE:-node}
STEPS=${STEPS:-"1000 5000"}
REPS=${REPS:-3}
TARGETS=${TARGETS:-"castmesh peer"}
USERS=${USERS:-1}            # castmesh: distinct accounts; members use them round-robin
ROUNDS=${ROUNDS:-50}
INTERVAL_MS=${INTERVAL_MS:-100}
TP_S=${TP_S:-3}
WINDOW=${WINDOW:-4}
RAMP=${RAMP:-1000}           # members started per second (at most 64 connecting at once)
HOLD_S=${HOLD_S:-2}
CM_ROOMS_PORT=${CM_ROOMS_PORT:-18180}
CM_ROOMS_RTMP_PORT=${CM_ROOMS_RTMP_PORT:-11980}
PEER_PORT=${PEER_PORT:-13300}
OUT=${OUT:-$BENCH_DIR/results/rooms.jsonl}

[ -n "$WS_LOADGEN" ] || die "castmesh-ws-loadgen not built (ninja -C build castmesh-ws-loadgen)"
[ -n "$CASTMESH" ] || die "castmesh not built"
[ -d "$BENCH_DIR/peer/node_modules/socket.io" ] || die "run: (cd bench/peer && npm ci)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d /tmp/castmesh-rooms.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$(dirname "$OUT")"
log "work $WORK; loadgen $WS_LOADGEN; castmesh $CASTMESH; node $($NODE --version); fd limit $(ulimit -n)"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
wait_file() {  # wait_file PATH PID TIMEOUT_S : until PATH exists or PID exits
  local i
  for i in $(seq $(($3 * 20))); do
    [ -e "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_target() {  # start_target castmesh|peer DIR ; sets SRV_PID, SRV_PORT
  local kind=$1 dir=$2
  case $kind in
    castmesh)
      env CASTMESH_SERVER__HOST=127.0.0.1 CASTMESH_SERVER__PORT="$CM_ROOMS_PORT" CASTMESH_SERVER__THREADS=1 \
          CASTMESH_SERVER__LOG_LEVEL="${CM_LOG_LEVEL:-warn}" \
          CASTMESH_RTMP__HOST=127.0.0.1 CASTMESH_RTMP__PORT="$CM_ROOMS_RTMP_PORT" CASTMESH_HLS__ENABLED=false \
          CASTMESH_DATABASE__URL="sqlite:$dir/castmesh.db" \
          CASTMESH_ROOMS__WS_RATE_PER_SEC=10000 CASTMESH_AUTH__LOGIN_RATE_PER_MIN=10000 \
          ${CM_ENV:-} \
          "${ON_SERVER_CPU[@]}" "$CASTMESH" serve >"$dir/server.log" 2>&1 &
      SRV_PID=$!
      SRV_PORT=$CM_ROOMS_PORT
      ;;
    peer)
      "${ON_SERVER_CPU[@]}" "$NODE" "$BENCH_DIR/peer/server.js" "$PEER_PORT" >"$dir/server.log" 2>&1 &
      SRV_PID=$!
      SRV_PORT=$PEER_PORT
      ;;
  esac
  BENCH_PIDS+=("$SRV_PID")
  wait_port "$SRV_PORT" 15 || die "$kind did not start: $(tail -5 "$dir/server.log")"
}

run_one() {  # run_one TARGET M REP
  local kind=$1 m=$2 rep=$3 dir dialect lg_pid idle=0 conn=0 s c0 c1 t0 t1 json
  dir="$WORK/$kind-$m-$rep"
  mkdir -p "$dir"
  start_target "$kind" "$dir"
  sleep 1
  dialect=castmesh
  [ "$kind" = peer ] && dialect=socketio
  "${ON_CLIENT_CPU[@]}" "$WS_LOADGEN" --dialect "$dialect" --port "$SRV_PORT" -m "$m" --users "$USERS" \
      --rounds "$ROUNDS" --interval-ms "$INTERVAL_MS" --throughput-s "$TP_S" --window "$WINDOW" \
      --ramp-per-sec "$RAMP" --settle-s 1 --hold-s "$HOLD_S" \
      --baseline-file "$dir/baseline" --ready-file "$dir/ready" --label "$kind" \
      >"$dir/result.json" 2>"$dir/loadgen.log" &
  lg_pid=$!
  BENCH_PIDS+=("$lg_pid")
  if wait_file "$dir/baseline" "$lg_pid" 120; then
    sleep 1
    idle=$(rss_kb "$SRV_PID")
  fi
  if wait_file "$dir/ready" "$lg_pid" 900; then
    conn=0
    for s in 1 2 3 4; do conn=$((conn + $(rss_kb "$SRV_PID"))); sleep 0.25; done
    conn=$((conn / 4))
  fi
  c0=$(cpu_ticks "$SRV_PID"); t0=$(date +%s.%N)
  wait "$lg_pid" || true
  c1=$(cpu_ticks "$SRV_PID"); t1=$(date +%s.%N)
  forget_pid "$lg_pid"
  stop_pid "$SRV_PID"
  forget_pid "$SRV_PID"
  json=$(cat "$dir/result.json")
  [ -n "$json" ] || json='{"error":"no output"}'
  python3 - "$json" "$m" "$rep" "$idle" "$conn" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" <<'EOF' | tee -a "$OUT"
import json, sys
j = json.loads(sys.argv[1]); m = int(sys.argv[2])
idle, conn = int(sys.argv[4]), int(sys.argv[5])
c0, c1, t0, t1, hz = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9]), int(sys.argv[10])
j.update(rep=int(sys.argv[3]), server_rss_idle_kb=idle, server_rss_connected_kb=conn,
         rss_per_member_kb=round((conn - idle) / m, 2) if conn and idle else None,
         server_cpu_pct_measured_phases=round(100 * (c1 - c0) / hz / (t1 - t0), 1) if t1 > t0 else None)
print(json.dumps(j))
EOF
  tail -2 "$dir/loadgen.log" >&2 || true
}

for m in $STEPS; do
  for rep in $(seq "$REPS"); do
    for kind in $TARGETS; do
      log "$kind M=$m rep $rep"
      run_one "$kind" "$m" "$rep"
    done
  done
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    if "error" in r: continue
    groups.setdefault((r["label"], r["members"]), []).append(r)
med = lambda g, k: statistics.median([x[k] for x in g if x.get(k) is not None] or [float("nan")])
print("| server | M | runs | last-receipt p50 ms | last-receipt p99 ms | median receipt ms | msgs/s (pipelined) | RSS/member KB | ramp s | failures |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (label, m), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    fails = sum(x["connect_failures"] + x["disconnects"] + x["rounds_incomplete"] for x in g)
    print(f"| {label} | {m:,} | {len(g)} | {med(g,'last_ms_p50'):.1f} | {med(g,'last_ms_p99'):.1f} | "
          f"{med(g,'median_receipt_ms_p50'):.1f} | {med(g,'tp_msgs_per_sec'):,.0f} | {med(g,'rss_per_member_kb'):.1f} | "
          f"{med(g,'ramp_ms')/1000:.1f} | {fails} |")
EOF
