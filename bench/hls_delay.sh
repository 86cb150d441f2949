#!/usr/bin/env bash
# Publish-to-HLS delay, castmesh vs nginx-rtmp in the same run (see bench/hls_delay.py).
# Each repetition starts each server fresh (HLS on, 2 s target duration, the test FLV has a
# keyframe every 2 s), publishes with castmesh-loadgen for $DURATION s and polls the playlist
# every $POLL_MS ms from core $CLIENT_CPU.
# Env: SERVERS ("nginx castmesh")  REPS (3)  DURATION (30)  POLL_MS (2)  OUT (bench/results/hls-DATE.jsonl)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_reexec "$0" "$@"

SERVERS=${SERVERS:-"nginx castmesh"}
REPS=${REPS:-3}
DURATION=${DURATION:-30}
POLL_MS=${POLL_MS:-2}
mkdir -p "$BENCH_DIR/results"
OUT=${OUT:-$BENCH_DIR/results/hls-$(date +%Y%m%d-%H%M%S).jsonl}

bench_init
gen_input "$WORK/in.flv"
echo "{\"machine\":$(machine_info),\"script\":\"hls_delay.sh\",\"servers\":\"$SERVERS\",\"reps\":$REPS,\"duration\":$DURATION,\"poll_ms\":$POLL_MS}" >>"$OUT"
log "results -> $OUT"
for rep in $(seq "$REPS"); do
  for server in $SERVERS; do
    start_server "$server" on
    r=$("${ON_CLIENT_CPU[@]}" python3 "$BENCH_DIR/hls_delay.py" --loadgen "$LOADGEN" --rtmp-url "$RTMP_URL" \
          --m3u8 "$HLS_URL" --file "$WORK/in.flv" --duration "$DURATION" --poll-ms "$POLL_MS" --label "$server")
    jq -c --argjson rep "$rep" --arg server "$server" '. + {rep:$rep, server:$server}' <<<"$r" >>"$OUT"
    log "$server rep=$rep segments=$(jq .segments <<<"$r") delay_ms=$(jq -c .delay_ms <<<"$r")"
    stop_server
    sleep 1
  done
done
log "done: $OUT"
python3 "$BENCH_DIR/summarize.py" "$OUT"
