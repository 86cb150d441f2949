#!/usr/bin/env bash
# Fan-out benchmark: one ~1 Mbit/s stream published by ffmpeg (real time, looped), N players.
# For every repetition, every step N and every target (server:protocol) it starts a fresh
# server pinned to core $SERVER_CPU, publishes, measures the idle server for 2 s, ramps N
# players with castmesh-loadgen on core $CLIENT_CPU, waits $SETTLE s, then samples the server's
# and the load generator's CPU and RSS for $WINDOW s (bench/measure.sh). Each item appends one
# JSON line to $OUT; bench/summarize.py turns the file into tables.
#
# Players read in one of two patterns (RCVLOWAT):
#  - RCVLOWAT=16384 (default): once a player has its first keyframe it sets SO_RCVLOWAT, so the
#    kernel wakes it per 16 KB (~120 ms of this stream) instead of per packet. On loopback the
#    sender pays for waking the receiver; with remote viewers it does not, so this is the closer
#    model of a real server, and one client core can carry 4,000 players.
#  - RCVLOWAT=0: eager readers, woken per packet (the load generator's core then carries
#    ~1,500 players; the server also pays for those wake-ups).
#
# Env: TARGETS  ("nginx:rtmp castmesh:rtmp castmesh:flv")  RCVLOWAT (16384)
#      STEPS ("1000 2000 3000 4000" with RCVLOWAT > 0, "500 1000 1500" when eager)
#      REPS (3)  RAMP players/s (1000)  SETTLE (3)  WINDOW (8)  HLS (on)  OUT (bench/results/fanout-DATE.jsonl)
#      SERVER_CPU (1) CLIENT_CPU (0) BENCH_NICE (-10) LOADGEN CASTMESH (paths)  LOADGEN_ARGS (extra)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_reexec "$0" "$@"

TARGETS=${TARGETS:-"nginx:rtmp castmesh:rtmp castmesh:flv"}
RCVLOWAT=${RCVLOWAT:-16384}
if [ "$RCVLOWAT" -gt 0 ]; then STEPS=${STEPS:-"1000 2000 3000 4000"}; else STEPS=${STEPS:-"500 1000 1500"}; fi
REPS=${REPS:-3}
RAMP=${RAMP:-1000}
SETTLE=${SETTLE:-3}
WINDOW=${WINDOW:-8}
HLS=${HLS:-on}
mkdir -p "$BENCH_DIR/results"
OUT=${OUT:-$BENCH_DIR/results/fanout-$(date +%Y%m%d-%H%M%S).jsonl}

bench_init
gen_input "$WORK/in.flv"
echo "{\"machine\":$(machine_info),\"script\":\"run_fanout.sh\",\"targets\":\"$TARGETS\",\"steps\":\"$STEPS\",\"reps\":$REPS,\"ramp\":$RAMP,\"settle\":$SETTLE,\"window\":$WINDOW,\"hls\":\"$HLS\",\"rcvlowat\":$RCVLOWAT}" >>"$OUT"
log "results -> $OUT"

run_item() {  # run_item REP SERVER PROTO N
  local rep=$1 server=$2 proto=$3 n=$4 url base lg_json ready lg_pid sm lm pub_alive i
  start_server "$server" "$HLS"
  if [ "$proto" = flv ]; then url=$FLV_URL; else url=$RTMP_URL; fi
  [ -n "$url" ] || { log "skip $server:$proto (no URL)"; stop_server; return; }
  start_ffmpeg_publisher "$WORK/in.flv" "$RTMP_URL"
  sleep 3
  base=$("${ON_CLIENT_CPU[@]}" "$BENCH_DIR/measure.sh" "$SERVER_PID" 2)
  ready="$WORK/ready-$rep-$server-$proto-$n"
  lg_json="$WORK/lg-$rep-$server-$proto-$n.json"
  "${ON_CLIENT_CPU[@]}" "$LOADGEN" --mode "$proto-play" --url "$url" -n "$n" --ramp-per-sec "$RAMP" \
    --duration $((SETTLE + WINDOW + 2)) --ready-file "$ready" --no-progress --label "$server:$proto" --rcvlowat "$RCVLOWAT" ${LOADGEN_ARGS:-} \
    >"$lg_json" 2>"$lg_json.err" &
  lg_pid=$!
  BENCH_PIDS+=("$lg_pid")
  for i in $(seq $((n / RAMP * 10 + 300))); do [ -f "$ready" ] && break; kill -0 "$lg_pid" 2>/dev/null || break; sleep 0.1; done
  sleep "$SETTLE"
  "${ON_CLIENT_CPU[@]}" "$BENCH_DIR/measure.sh" "$SERVER_PID" "$WINDOW" >"$WORK/sm.json" &
  local sm_pid=$!
  lm=$("${ON_CLIENT_CPU[@]}" "$BENCH_DIR/measure.sh" "$lg_pid" "$WINDOW")
  wait "$sm_pid" || true
  sm=$(cat "$WORK/sm.json")
  wait "$lg_pid" || true
  forget_pid "$lg_pid"
  pub_alive=false
  kill -0 "$PUB_PID" 2>/dev/null && pub_alive=true
  local lg
  lg=$(tail -1 "$lg_json")
  [ -n "$lg" ] || lg='null'
  jq -c -n --argjson rep "$rep" --arg server "$server" --arg proto "$proto" --argjson n "$n" \
    --argjson base "$base" --argjson srv "$sm" --argjson lgm "$lm" --argjson lg "$lg" --argjson pub_alive "$pub_alive" \
    '{rep:$rep, server:$server, proto:$proto, n:$n, idle:$base, server_m:$srv, loadgen_m:$lgm, result:$lg, publisher_alive:$pub_alive}' \
    >>"$OUT"
  log "$server:$proto n=$n rep=$rep cpu=$(jq .cpu_pct <<<"$sm")% rss=$(jq .rss_kb_mean <<<"$sm")KB (idle $(jq .rss_kb_mean <<<"$base")KB)" \
      "kept_up=$(jq .kept_up <<<"$lg")/$n startup_p50=$(jq .startup_ms.p50 <<<"$lg") kbps_med=$(jq .kbps.median <<<"$lg") loadgen_cpu=$(jq .cpu_pct <<<"$lm")%"
  stop_publisher
  stop_server
  sleep 1
}

for rep in $(seq "$REPS"); do
  for n in $STEPS; do
    for t in $TARGETS; do
      run_item "$rep" "${t%%:*}" "${t##*:}" "$n"
    done
  done
done
log "done: $OUT"
python3 "$BENCH_DIR/summarize.py" "$OUT"
