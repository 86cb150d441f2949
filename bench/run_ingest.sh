#!/usr/bin/env bash
# Ingest benchmark: N RTMP publishers, each pushing the ~1 Mbit/s test FLV in real time
# (castmesh-loadgen --mode rtmp-publish, looping, paced by the tag timestamps), one stream each.
# For every repetition, step N and target (server:hls) a fresh server is started on core
# $SERVER_CPU; the publishers ramp on core $CLIENT_CPU; after $SETTLE s the server's and the
# load generator's CPU and RSS are sampled for $WINDOW s. One JSON line per item goes to $OUT;
# bench/summarize.py makes the tables.
#
# Publishers write every BATCH_MS ms whatever media is due by then (10 ~ one write per frame;
# 40 = default: 1-2 video frames and ~2 audio frames per write). Server cost per byte depends
# strongly on it (one loopback packet per write), so compare servers at the same setting.
#
# Env: TARGETS ("nginx:off castmesh:off castmesh:on"; hls on|off)  STEPS ("500 1000 2000")  BATCH_MS (40)
#      REPS (3)  RAMP publishers/s (500)  SETTLE (3)  WINDOW (8)  OUT (bench/results/ingest-DATE.jsonl)
#      SERVER_CPU (1) CLIENT_CPU (0) LOADGEN CASTMESH LOADGEN_ARGS
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_reexec "$0" "$@"

TARGETS=${TARGETS:-"nginx:off castmesh:off castmesh:on"}
STEPS=${STEPS:-"500 1000 2000"}
REPS=${REPS:-3}
RAMP=${RAMP:-500}
SETTLE=${SETTLE:-3}
WINDOW=${WINDOW:-8}
BATCH_MS=${BATCH_MS:-40}
mkdir -p "$BENCH_DIR/results"
OUT=${OUT:-$BENCH_DIR/results/ingest-$(date +%Y%m%d-%H%M%S).jsonl}

bench_init
gen_input "$WORK/in.flv"
echo "{\"machine\":$(machine_info),\"script\":\"run_ingest.sh\",\"targets\":\"$TARGETS\",\"steps\":\"$STEPS\",\"reps\":$REPS,\"ramp\":$RAMP,\"settle\":$SETTLE,\"window\":$WINDOW,\"batch_ms\":$BATCH_MS}" >>"$OUT"
log "results -> $OUT"

run_item() {  # run_item REP SERVER HLS N
  local rep=$1 server=$2 hls=$3 n=$4 base lg_json ready lg_pid sm lm lg i
  start_server "$server" "$hls"
  sleep 1
  base=$("${ON_CLIENT_CPU[@]}" "$BENCH_DIR/measure.sh" "$SERVER_PID" 2)
  ready="$WORK/ready-$rep-$server-$hls-$n"
  lg_json="$WORK/lg-$rep-$server-$hls-$n.json"
  "${ON_CLIENT_CPU[@]}" "$LOADGEN" --mode rtmp-publish --url "$RTMP_BASE/pub" --file "$WORK/in.flv" -n "$n" \
    --ramp-per-sec "$RAMP" --duration $((SETTLE + WINDOW + 2)) --ready-file "$ready" --no-progress \
    --label "$server:hls-$hls" --batch-ms "$BATCH_MS" ${LOADGEN_ARGS:-} >"$lg_json" 2>"$lg_json.err" &
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
  lg=$(tail -1 "$lg_json")
  [ -n "$lg" ] || lg='null'
  jq -c -n --argjson rep "$rep" --arg server "$server" --arg proto "publish-hls-$hls" --argjson n "$n" \
    --argjson base "$base" --argjson srv "$sm" --argjson lgm "$lm" --argjson lg "$lg" \
    '{rep:$rep, server:$server, proto:$proto, n:$n, idle:$base, server_m:$srv, loadgen_m:$lgm, result:$lg}' >>"$OUT"
  log "$server hls=$hls n=$n rep=$rep cpu=$(jq .cpu_pct <<<"$sm")% rss=$(jq .rss_kb_mean <<<"$sm")KB (idle $(jq .rss_kb_mean <<<"$base")KB)" \
      "started=$(jq .connected <<<"$lg")/$n kept_up=$(jq .kept_up <<<"$lg") kbps_med=$(jq .kbps.median <<<"$lg") loadgen_cpu=$(jq .cpu_pct <<<"$lm")%"
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
