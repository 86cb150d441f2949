#!/usr/bin/env bash
# Cluster benchmark: three castmesh nodes (cluster mode, one Redis, one PostgreSQL) against three
# Node + Socket.IO servers sharing one Redis through @socket.io/redis-adapter
# (bench/peer/cluster_server.js), same load, same run, interleaved per repetition.
#
# Per repetition and target (castmesh, peer), on a fresh redis-server and fresh nodes:
#  1. fan-out: M members in one room spread round-robin over the three nodes
#     (castmesh-ws-loadgen --member-ports A,B,C), the driver (member 0) on node A sends $ROUNDS
#     seeks, one at a time; per round the latency from the seek being written to each member's
#     receipt of the `state` frame, reported for members on A ("local") and on B and C
#     ("cross"), then $TP_S s of pipelined seeks;
#  2. events/s: one member per node, $EV_S s of pipelined seeks (window $EV_WINDOW): state
#     events per second delivered to every node (each event crosses Redis), with Redis's own
#     PUBLISH / XADD counts as a check;
#  3. detection: SIGKILL node C; A and B polled every $POLL_MS ms (bench/cluster/detect.py)
#     until C is suspect / offline (castmesh) or the adapter's server count drops (peer);
#  4. hang: SIGSTOP node B (its sockets stay open), A polled until B is offline (at most
#     $HANG_TIMEOUT_S s), then SIGCONT and stop.
# Then, once per repetition and target: the bus level (castmesh-bus-bench, a RedisEventBus
# publishing to another; bench/peer/bus_bench.js, a Socket.IO Redis adapter broadcasting to
# another process), and redis-benchmark PUBLISH as the ceiling.
#
# Servers (nodes, Redis, PostgreSQL backends) run on core $SERVER_CPU, the load client on core
# $CLIENT_CPU. Every process is started here and stopped by PID; PostgreSQL comes from
# scripts/pg-test (stopped at the end). Appends JSON lines to $OUT, prints markdown tables.
#
#   REPS=3 bench/cluster/run_cluster.sh
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
bench_reexec "$0" "$@"

CLUSTER_DIR="$BENCH_DIR/cluster"
WS_LOADGEN=${WS_LOADGEN:-$(find_bin "$REPO_DIR/build-bench/bench/castmesh-ws-loadgen" "$REPO_DIR/build/bench/castmesh-ws-loadgen" || true)}
CASTMESH=${CLUSTER_CASTMESH:-$(find_bin "$REPO_DIR/build-bench/src/castmesh" "$REPO_DIR/build/src/castmesh" || true)}
BUS_BENCH=${BUS_BENCH:-$(find_bin "$REPO_DIR/build-bench/bench/cluster/castmesh-bus-bench" "$REPO_DIR/build/bench/cluster/castmesh-bus-bench" || true)}
NODE=${NODE:-node}
REPS=${REPS:-3}
TARGETS=${TARGETS:-"castmesh peer"}
TESTS=${TESTS:-"fanout events detect hang bus ceiling"}
M=${M:-1500}                  # members in the room, spread over the three nodes
USERS=${USERS:-1}
ROUNDS=${ROUNDS:-100}
INTERVAL_MS=${INTERVAL_MS:-100}
TP_S=${TP_S:-3}
WINDOW=${WINDOW:-4}
RAMP=${RAMP:-1000}
EV_S=${EV_S:-5}
EV_WINDOW=${EV_WINDOW:-64}
POLL_MS=${POLL_MS:-20}
HANG_TIMEOUT_S=${HANG_TIMEOUT_S:-10}   # hang test: give up after this long
HB_S=${HB_S:-1}               # cluster.heartbeat_interval
SUSPECT_N=${SUSPECT_N:-2}     # cluster.suspect_threshold
OFFLINE_N=${OFFLINE_N:-3}     # cluster.offline_threshold
BUS_N=${BUS_N:-200000}        # events published by castmesh-bus-bench
CEIL_N=${CEIL_N:-200000}      # redis-benchmark requests
PAYLOAD_BYTES=${PAYLOAD_BYTES:-200}
CL_HTTP_BASE=${CL_HTTP_BASE:-18381}         # castmesh nodes: HTTP 18381..18383
CL_RTMP_BASE=${CL_RTMP_BASE:-11391}         # RTMP 11391..11393
CL_INTERNODE_BASE=${CL_INTERNODE_BASE:-18391}  # inter-node API 18391..18393
PEER_BASE=${PEER_BASE:-13311}               # Socket.IO peers 13311..13313
OUT=${OUT:-$BENCH_DIR/results/cluster.jsonl}
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
PG_KEY="castmesh-bench-cluster-$$"
PG_URL=""
PG_PID=""   # postmaster
NODE_IDS=(a b c)

[ -n "$WS_LOADGEN" ] || die "castmesh-ws-loadgen not built (ninja -C build-bench castmesh-ws-loadgen)"
[ -n "$CASTMESH" ] || [[ " $TARGETS " != *" castmesh "* ]] || die "castmesh not built"
[ -d "$BENCH_DIR/peer/node_modules/@socket.io/redis-adapter" ] || die "run: (cd bench/peer && npm ci)"
command -v redis-server >/dev/null || die "redis-server missing"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d /tmp/castmesh-cluster.XXXXXX)
cluster_cleanup() {
  bench_cleanup
  [ -z "$PG_URL" ] || "$REPO_DIR/scripts/pg-test" stop "$PG_KEY" || true
}
trap cluster_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$(dirname "$OUT")"
log "run $RUN_ID; work $WORK; loadgen $WS_LOADGEN; castmesh $CASTMESH; node $($NODE --version); fd limit $(ulimit -n)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_s() { date +%s.%N; }

# emit JSON EXTRA_JSON : merges EXTRA into JSON, tags it with the run, appends to $OUT
emit() {
  python3 - "$1" "$2" "$RUN_ID" <<'EOF' | tee -a "$OUT"
import json, sys
try:
    j = json.loads(sys.argv[1])
except ValueError:
    j = {"error": "bad output", "raw": sys.argv[1][:500]}
j.update(json.loads(sys.argv[2]))
j["run_id"] = sys.argv[3]
print(json.dumps(j))
EOF
}

# ---- PostgreSQL (castmesh cluster mode requires postgres://) ----
start_pg() {
  PG_URL=$("$REPO_DIR/scripts/pg-test" start "$PG_KEY") || die "pg-test start failed"
  local dir pid
  dir="${CASTMESH_PG_TEST_ROOT:-/tmp}/castmesh-pg-$(printf '%s' "$PG_KEY" | sha256sum | cut -c1-12)"  # as pg-test names it
  # Backends fork from the postmaster: pin it to the server core (new backends inherit).
  if [ -n "$dir" ] && [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -1 "$dir/data/postmaster.pid")
    taskset -a -p -c "$SERVER_CPU" "$pid" >/dev/null 2>&1 || true
    PG_PID=$pid
  fi
  log "postgres $PG_URL"
}

# ---- Redis ----
start_redis() {  # start_redis DIR ; sets REDIS_PID REDIS_PORT REDIS_URL
  local dir=$1
  REDIS_PORT=$(free_port)
  "${ON_SERVER_CPU[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --daemonize no --dir "$dir" --logfile "$dir/redis.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  BENCH_PIDS+=("$REDIS_PID")
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  local i
  for i in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  die "redis-server did not start"
}

redis_counts() {  # JSON {"publish":N,"xadd":N,"spublish":N} from INFO commandstats
  redis-cli -p "$REDIS_PORT" info commandstats 2>/dev/null | tr -d '\r' | python3 -c '
import json, re, sys
c = {"publish": 0, "xadd": 0, "evalsha": 0, "eval": 0}
for line in sys.stdin:
    m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
    if m and m.group(1) in c: c[m.group(1)] = int(m.group(2))
print(json.dumps(c))'
}

# ---- nodes ----
NODE_PIDS=()
NODE_PORTS=()
start_castmesh_nodes() {  # DIR
  local dir=$1 i id http rtmp inter
  NODE_PIDS=(); NODE_PORTS=()
  for i in 0 1 2; do
    id=${NODE_IDS[$i]}; http=$((CL_HTTP_BASE + i)); rtmp=$((CL_RTMP_BASE + i)); inter=$((CL_INTERNODE_BASE + i))
    env CASTMESH_SERVER__HOST=127.0.0.1 CASTMESH_SERVER__PORT="$http" CASTMESH_SERVER__THREADS=1 \
        CASTMESH_SERVER__LOG_LEVEL="${CM_LOG_LEVEL:-warn}" \
        CASTMESH_RTMP__HOST=127.0.0.1 CASTMESH_RTMP__PORT="$rtmp" CASTMESH_HLS__ENABLED=false \
        CASTMESH_DATABASE__URL="$PG_URL" \
        CASTMESH_ROOMS__WS_RATE_PER_SEC=10000 CASTMESH_AUTH__LOGIN_RATE_PER_MIN=10000 \
        CASTMESH_CLUSTER__ENABLED=true CASTMESH_CLUSTER__NODE_ID="$id" \
        CASTMESH_CLUSTER__ADVERTISE_ADDR="127.0.0.1:$inter" CASTMESH_CLUSTER__LISTEN="127.0.0.1:$inter" \
        CASTMESH_CLUSTER__HEARTBEAT_INTERVAL="$HB_S" CASTMESH_CLUSTER__SUSPECT_THRESHOLD="$SUSPECT_N" \
        CASTMESH_CLUSTER__OFFLINE_THRESHOLD="$OFFLINE_N" \
        CASTMESH_REDIS__URL="$REDIS_URL" CASTMESH_REDIS__KEY_PREFIX=cmbench \
        CASTMESH_SERVER__CLUSTER_SECRET="bench-cluster-secret-0123456789abcdef" \
        ${CM_ENV:-} \
        "${ON_SERVER_CPU[@]}" "$CASTMESH" serve >"$dir/node-$id.log" 2>&1 &
    NODE_PIDS+=("$!"); NODE_PORTS+=("$http")
    BENCH_PIDS+=("$!")
    # One at a time: the first start applies the schema migrations.
    wait_port "$http" 30 || die "castmesh node $id did not start: $(tail -5 "$dir/node-$id.log")"
  done
  # Every node sees three alive nodes.
  local t
  for t in $(seq 200); do
    local ok=1 p
    for p in "${NODE_PORTS[@]}"; do
      [ "$(curl -s --max-time 1 "http://127.0.0.1:$p/api/v1/cluster/nodes" | grep -o '"state":"alive"' | wc -l)" -ge 3 ] || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  log "warning: the nodes do not all see three alive nodes: $(curl -s "http://127.0.0.1:${NODE_PORTS[0]}/api/v1/cluster/nodes")"
}

start_peer_nodes() {  # DIR
  local dir=$1 i port
  NODE_PIDS=(); NODE_PORTS=()
  for i in 0 1 2; do
    port=$((PEER_BASE + i))
    "${ON_SERVER_CPU[@]}" "$NODE" "$BENCH_DIR/peer/cluster_server.js" "$port" "$REDIS_URL" "${NODE_IDS[$i]}" \
        >"$dir/node-${NODE_IDS[$i]}.log" 2>&1 &
    NODE_PIDS+=("$!"); NODE_PORTS+=("$port")
    BENCH_PIDS+=("$!")
  done
  for port in "${NODE_PORTS[@]}"; do
    wait_port "$port" 15 || die "peer on $port did not start: $(cat "$dir"/node-*.log | tail -5)"
  done
  local t
  for t in $(seq 100); do
    curl -s --max-time 1 "http://127.0.0.1:${NODE_PORTS[0]}/nodes" | grep -q '"servers":3' && return 0
    sleep 0.1
  done
  log "warning: the peer's adapter does not count three servers"
}

stop_nodes() {
  local p
  for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; forget_pid "$p"; done
  NODE_PIDS=()
}

pg_procs() {  # the postmaster and its children (backends of the nodes' connections)
  [ -n "$PG_PID" ] || return 0
  echo "$PG_PID"
  pgrep -P "$PG_PID" 2>/dev/null || true
}
pg_ticks() {  # summed CPU ticks of the PIDs given
  local p t=0
  for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

run_loadgen() {  # run_loadgen OUTFILE LOGFILE ARGS... ; fills LG_CPU (JSON: server CPU % over the run)
  local out=$1 logf=$2 pid c0=() c1=() t0 t1 p i pgp
  shift 2
  pgp=$(pg_procs | tr '\n' ' ')
  for p in "${NODE_PIDS[@]}" "$REDIS_PID"; do c0+=("$(cpu_ticks "$p")"); done
  c0+=("$(pg_ticks $pgp)")
  t0=$(now_s)
  "${ON_CLIENT_CPU[@]}" "$WS_LOADGEN" "$@" >"$out" 2>"$logf" &
  pid=$!
  BENCH_PIDS+=("$pid")
  wait "$pid" || true
  forget_pid "$pid"
  t1=$(now_s)
  for p in "${NODE_PIDS[@]}" "$REDIS_PID"; do c1+=("$(cpu_ticks "$p")"); done
  c1+=("$(pg_ticks $pgp)")
  LG_CPU=$(python3 - "$t0" "$t1" "$(getconf CLK_TCK)" "${c0[*]}" "${c1[*]}" <<'EOF'
import json, sys
t0, t1, hz = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
a = [int(x) for x in sys.argv[4].split()]; b = [int(x) for x in sys.argv[5].split()]
pct = [round(100 * (y - x) / hz / (t1 - t0), 1) for x, y in zip(a, b)]
print(json.dumps({"node_cpu_pct": pct[:-2], "redis_cpu_pct": pct[-2], "postgres_cpu_pct": pct[-1],
                  "wall_s": round(t1 - t0, 1)}))
EOF
)
}

# ---- one repetition of one target ----
run_target() {  # run_target castmesh|peer REP
  local kind=$1 rep=$2 dir dialect a ports before after rss r
  dir="$WORK/$kind-$rep"
  mkdir -p "$dir"
  start_redis "$dir"
  if [ "$kind" = castmesh ]; then start_castmesh_nodes "$dir"; dialect=castmesh; else start_peer_nodes "$dir"; dialect=socketio; fi
  a=${NODE_PORTS[0]}
  ports=$(IFS=,; echo "${NODE_PORTS[*]}")
  sleep 1

  if [[ " $TESTS " == *" fanout "* ]]; then
    log "$kind rep $rep: fan-out, $M members over $ports"
    run_loadgen "$dir/fanout.json" "$dir/fanout.log" --dialect "$dialect" --port "$a" --member-ports "$ports" \
        -m "$M" --users "$USERS" --rounds "$ROUNDS" --interval-ms "$INTERVAL_MS" --throughput-s "$TP_S" \
        --window "$WINDOW" --ramp-per-sec "$RAMP" --settle-s 1 --label "$kind"
    rss=$(for p in "${NODE_PIDS[@]}"; do rss_kb "$p"; done | paste -sd, -)
    emit "$(cat "$dir/fanout.json")" "$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); j.update(test="fanout", target=sys.argv[2], rep=int(sys.argv[3]), node_rss_kb_end=[int(x) for x in sys.argv[4].split(",")]); print(json.dumps(j))' "$LG_CPU" "$kind" "$rep" "$rss")" >/dev/null
    tail -3 "$dir/fanout.log" >&2 || true
  fi

  if [[ " $TESTS " == *" events "* ]]; then
    log "$kind rep $rep: events/s, 3 members (one per node), ${EV_S} s, window $EV_WINDOW"
    before=$(redis_counts)
    run_loadgen "$dir/events.json" "$dir/events.log" --dialect "$dialect" --port "$a" --member-ports "$ports" \
        -m 3 --users 1 --rounds 0 --throughput-s "$EV_S" --window "$EV_WINDOW" --settle-s 1 --label "$kind"
    after=$(redis_counts)
    emit "$(cat "$dir/events.json")" "$(python3 -c '
import json, sys
j = json.loads(sys.argv[1]); b = json.loads(sys.argv[4]); a = json.loads(sys.argv[5])
j.update(test="events", target=sys.argv[2], rep=int(sys.argv[3]), redis_calls={k: a[k] - b[k] for k in a})
print(json.dumps(j))' "$LG_CPU" "$kind" "$rep" "$before" "$after")" >/dev/null
  fi

  if [[ " $TESTS " == *" detect "* ]]; then
    log "$kind rep $rep: SIGKILL node c, polling a and b every $POLL_MS ms"
    r=$(python3 "$CLUSTER_DIR/detect.py" "$kind" --kill-pid "${NODE_PIDS[2]}" --victim c \
          --observers "${NODE_PORTS[0]}" "${NODE_PORTS[1]}" --interval-ms "$POLL_MS" --label "$kind" \
          --timeout-s $((HB_S * OFFLINE_N + 15)) 2>"$dir/detect.log" || true)
    [ -n "$r" ] || r='{"error":"detect.py failed"}'
    emit "$r" "$(printf '{"test":"detect","target":"%s","rep":%d,"heartbeat_interval_s":%s,"suspect_threshold":%s,"offline_threshold":%s,"bound_ms":%s}' \
          "$kind" "$rep" "$HB_S" "$SUSPECT_N" "$OFFLINE_N" "$(python3 -c "print(int(($HB_S * $OFFLINE_N + 1) * 1000))")")" >/dev/null
  fi
  if [[ " $TESTS " == *" hang "* ]]; then
    # A hung node (SIGSTOP: process and sockets stay, nothing runs): node b, observed by a.
    local alive_n=3
    [[ " $TESTS " == *" detect "* ]] && alive_n=2
    log "$kind rep $rep: SIGSTOP node b, polling a every $POLL_MS ms (up to $HANG_TIMEOUT_S s)"
    r=$(python3 "$CLUSTER_DIR/detect.py" "$kind" --kill-pid "${NODE_PIDS[1]}" --signal STOP --victim b \
          --observers "${NODE_PORTS[0]}" --nodes "$alive_n" --interval-ms "$POLL_MS" --label "$kind" \
          --timeout-s "$HANG_TIMEOUT_S" 2>"$dir/hang.log" || true)
    kill -CONT "${NODE_PIDS[1]}" 2>/dev/null || true
    [ -n "$r" ] || r='{"error":"detect.py failed"}'
    emit "$r" "$(printf '{"test":"hang","target":"%s","rep":%d,"heartbeat_interval_s":%s,"suspect_threshold":%s,"offline_threshold":%s,"bound_ms":%s}' \
          "$kind" "$rep" "$HB_S" "$SUSPECT_N" "$OFFLINE_N" "$(python3 -c "print(int(($HB_S * $OFFLINE_N + 1) * 1000))")")" >/dev/null
  fi
  stop_nodes
  stop_pid "$REDIS_PID"; forget_pid "$REDIS_PID"
}

# ---- events through Redis at the bus level: castmesh-bus-bench vs the Socket.IO adapter ----
run_bus() {  # run_bus castmesh|peer REP
  local kind=$1 rep=$2 dir="$WORK/bus-$1-$2" pid sub c0 t0 r i
  mkdir -p "$dir"
  start_redis "$dir"
  c0=$(cpu_ticks "$REDIS_PID"); t0=$(now_s)
  if [ "$kind" = castmesh ]; then
    log "bus rep $rep: castmesh-bus-bench, $BUS_N events of $PAYLOAD_BYTES B (RedisEventBus a -> b)"
    "${ON_CLIENT_CPU[@]}" "$BUS_BENCH" --redis "$REDIS_URL" -n "$BUS_N" --payload-bytes "$PAYLOAD_BYTES" --latency-s 0 \
        >"$dir/bus.json" 2>"$dir/bus.log" &
    pid=$!; BENCH_PIDS+=("$pid"); wait "$pid" || true; forget_pid "$pid"
  else
    log "bus rep $rep: bench/peer/bus_bench.js, $BUS_N room broadcasts of $PAYLOAD_BYTES B (Socket.IO Redis adapter a -> b)"
    "${ON_CLIENT_CPU[@]}" "$NODE" "$BENCH_DIR/peer/bus_bench.js" sub "$REDIS_URL" "$BUS_N" "$PAYLOAD_BYTES" >"$dir/sub.out" 2>"$dir/sub.log" &
    sub=$!; BENCH_PIDS+=("$sub")
    for i in $(seq 200); do grep -qs ready "$dir/sub.out" && break; sleep 0.05; done
    c0=$(cpu_ticks "$REDIS_PID"); t0=$(now_s)
    "${ON_CLIENT_CPU[@]}" "$NODE" "$BENCH_DIR/peer/bus_bench.js" pub "$REDIS_URL" "$BUS_N" "$PAYLOAD_BYTES" >"$dir/pub.out" 2>"$dir/pub.log" &
    pid=$!; BENCH_PIDS+=("$pid"); wait "$pid" || true; forget_pid "$pid"
    wait "$sub" || true; forget_pid "$sub"
    python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).read().split("ready",1)[-1].strip().splitlines()[-1]); p=json.loads(open(sys.argv[2]).read().strip().splitlines()[-1]); j["publish_per_sec"]=p.get("published_per_sec"); print(json.dumps(j))' \
        "$dir/sub.out" "$dir/pub.out" >"$dir/bus.json" 2>>"$dir/sub.log" || echo '{"error":"peer bus bench failed"}' >"$dir/bus.json"
  fi
  r=$(python3 -c 'import sys; print(round(100*(int(sys.argv[2])-int(sys.argv[1]))/int(sys.argv[5])/(float(sys.argv[4])-float(sys.argv[3])),1))' \
        "$c0" "$(cpu_ticks "$REDIS_PID")" "$t0" "$(now_s)" "$(getconf CLK_TCK)")
  emit "$(grep "^{" "$dir/bus.json" | tail -1)" "{\"test\":\"bus\",\"target\":\"$kind\",\"rep\":$rep,\"redis_cpu_pct\":$r,\"redis_calls\":$(redis_counts)}" >/dev/null
  stop_pid "$REDIS_PID"; forget_pid "$REDIS_PID"
}

run_ceiling() {  # REP: redis-benchmark PUBLISH with one subscriber, 1 connection and 50 pipelined
  local rep=$1 dir="$WORK/ceil-$rep" sub payload c line rps
  mkdir -p "$dir"
  start_redis "$dir"
  "${ON_CLIENT_CPU[@]}" redis-cli -p "$REDIS_PORT" subscribe cmbench:ceiling >/dev/null 2>&1 &
  sub=$!; BENCH_PIDS+=("$sub")
  sleep 0.3
  payload=$(head -c "$PAYLOAD_BYTES" /dev/zero | tr '\0' x)
  for c in "1 1" "50 16"; do
    set -- $c
    line=$("${ON_CLIENT_CPU[@]}" redis-benchmark -p "$REDIS_PORT" -n "$CEIL_N" -c "$1" -P "$2" -q \
             publish cmbench:ceiling "$payload" 2>/dev/null | tr '\r' '\n' | grep -i 'requests per second' | tail -1)
    rps=$(echo "$line" | grep -oE '[0-9]+(\.[0-9]+)?' | head -1)
    emit "{}" "{\"test\":\"ceiling\",\"target\":\"redis-benchmark\",\"rep\":$rep,\"clients\":$1,\"pipeline\":$2,\"payload_bytes\":$PAYLOAD_BYTES,\"publish_per_sec\":${rps:-0}}" >/dev/null
  done
  stop_pid "$sub"; forget_pid "$sub"
  stop_pid "$REDIS_PID"; forget_pid "$REDIS_PID"
}

emit "{}" "$(printf '{"test":"machine","machine":%s,"targets":"%s","tests":"%s","m":%d,"rounds":%d,"heartbeat_interval_s":%s,"server_cpu":"%s","client_cpu":"%s"}' \
  "$(machine_info)" "$TARGETS" "$TESTS" "$M" "$ROUNDS" "$HB_S" "$SERVER_CPU" "$CLIENT_CPU")" >/dev/null
if [[ " $TESTS " =~ \ (fanout|events|detect|hang)\  ]] && [[ " $TARGETS " == *" castmesh "* ]]; then
  start_pg
fi
for rep in $(seq "$REPS"); do
  for kind in $TARGETS; do
    if [[ " $TESTS " =~ \ (fanout|events|detect|hang)\  ]]; then
      run_target "$kind" "$rep"
    fi
  done
  if [[ " $TESTS " == *" bus "* ]]; then
    for kind in $TARGETS; do
      if [ "$kind" = castmesh ] && [ -z "$BUS_BENCH" ]; then log "castmesh-bus-bench not built: skipped"; continue; fi
      run_bus "$kind" "$rep"
    done
  fi
  [[ " $TESTS " != *" ceiling "* ]] || run_ceiling "$rep"
done

python3 "$CLUSTER_DIR/summarize.py" "$OUT" --run "$RUN_ID"
