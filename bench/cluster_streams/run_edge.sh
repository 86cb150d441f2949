#!/usr/bin/env bash
# Clustered live streaming benchmark: castmesh's edge relays and HLS proxy (three nodes in
# cluster mode, one Redis, one PostgreSQL) against nginx-rtmp's on-demand pull (one nginx origin,
# one nginx edge whose application says `pull rtmp://127.0.0.1:ORIGIN/live;`), same run,
# interleaved per repetition, each repetition on fresh servers.
#
# One live publisher per target: ffmpeg encoding testsrc2 854x480 30 fps, x264 ultrafast
# zerolatency, GOP 30 (1 s), 1 Mbit/s, + AAC, to node a (castmesh) / the nginx origin.
# Tests ($TESTS):
#  firstframe  castmesh-loadgen `-n 1` runs, connect -> first complete video keyframe tag:
#              local  ($LOCAL_N) players on the origin itself (no relay involved);
#              cold   ($COLD_N) players on an edge with no relay: before each run the script
#                     waits until the previous relay is gone (castmesh: castmesh_relays_active
#                     0 on b and no relay connection on a, relay.release_delay=$RELEASE_MS ms,
#                     then $COLD_SETTLE_S s so that b, whose live.idle_timeout_ms is 0, has also
#                     dropped the stream's Source; nginx: the origin's /stat lists only the
#                     publisher); a run that began with stale frames is counted apart;
#              warm   ($WARM_N) players on the edge while another player holds the relay.
#              castmesh: RTMP and HTTP-FLV; nginx-rtmp: RTMP (Debian's module has no HTTP-FLV).
#  stale       castmesh only: HTTP-FLV plays on node c (default live.idle_timeout_ms, 10 s)
#              $STALE_AFTER_S s after its previous relay was released (see edge_probe.py stale).
#  relaycost   origin CPU (bench/measure.sh over $RC_WINDOW s) and origin egress (castmesh:
#              castmesh_bytes_sent_total over the window; nginx: /stat bytes_out) with 0, 1 and
#              $PLAYERS RTMP players on the edge, and $PLAYERS players on the origin itself.
#  hls         castmesh only: the playlists of a (owner), b and c polled every $POLL_MS ms for
#              $HLS_S s (edge_probe.py hls-lag); then `wrk -t1 -c$WRK_C -d${WRK_S}s` on one
#              segment on a (local store) and on b (proxy cache), and on b's playlist; the nginx
#              phase serves a copy of the same segment as a static file (sendfile) for reference.
#  failover    castmesh only, last: an HTTP-FLV player on c, node a SIGKILLed, b and c polled
#              every 20 ms; when b sees a offline the publisher is started towards b; times to
#              b's publish, to c listing b as owner, to the first video frame on c's player.
#
# Placement: servers (nodes, Redis, PostgreSQL backends, nginx) on core $SERVER_CPU, every client
# (ffmpeg, castmesh-loadgen, the Python probes, wrk) on core $CLIENT_CPU. Every process is started
# here and stopped by PID; PostgreSQL via scripts/pg-test (stopped at the end). Appends JSON lines
# to $OUT (tagged with run_id) and prints the tables of bench/cluster_streams/summarize.py.
#
#   CASTMESH=/tmp/bin/castmesh LOADGEN=/tmp/bin/castmesh-loadgen REPS=3 bench/cluster_streams/run_edge.sh
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
bench_reexec "$0" "$@"

CS_DIR="$BENCH_DIR/cluster_streams"
PROBE="$CS_DIR/edge_probe.py"
REPS=${REPS:-3}
TARGETS=${TARGETS:-"castmesh nginx"}
TESTS=${TESTS:-"firstframe stale relaycost hls failover"}
LOCAL_N=${LOCAL_N:-15}
COLD_N=${COLD_N:-30}
WARM_N=${WARM_N:-30}
COLD_SETTLE_S=${COLD_SETTLE_S:-1.5}   # castmesh cold runs: at least this long after the previous run ended
CM_SAMPLE_S=${CM_SAMPLE_S:-1}         # loadgen --duration of one castmesh first-frame run
NG_SAMPLE_S=${NG_SAMPLE_S:-2.5}       # the same for nginx-rtmp (it waits for the next keyframe, GOP 1 s)
RELEASE_MS=${RELEASE_MS:-100}         # relay.release_delay on every node, in ms here
STALE_N=${STALE_N:-6}
STALE_AFTER_S=${STALE_AFTER_S:-2}
PLAYERS=${PLAYERS:-200}
RC_SETTLE=${RC_SETTLE:-3}
RC_WINDOW=${RC_WINDOW:-8}
RCVLOWAT=${RCVLOWAT:-16384}
HLS_S=${HLS_S:-40}
POLL_MS=${POLL_MS:-10}
WRK_S=${WRK_S:-8}
WRK_C=${WRK_C:-16}
HB_S=${HB_S:-1}               # cluster.heartbeat_interval
SUSPECT_N=${SUSPECT_N:-2}
OFFLINE_N=${OFFLINE_N:-3}
CS_HTTP_BASE=${CS_HTTP_BASE:-18581}        # castmesh nodes a, b, c: HTTP 18581..18583
CS_RTMP_BASE=${CS_RTMP_BASE:-11591}        # RTMP 11591..11593
CS_INTERNODE_BASE=${CS_INTERNODE_BASE:-18591}  # inter-node API 18591..18593
NG_ORIGIN_RTMP=${NG_ORIGIN_RTMP:-21961}
NG_ORIGIN_HTTP=${NG_ORIGIN_HTTP:-28961}
NG_EDGE_RTMP=${NG_EDGE_RTMP:-21962}
NG_EDGE_HTTP=${NG_EDGE_HTTP:-28962}
STREAM=${STREAM:-edge}
OUT=${OUT:-$BENCH_DIR/results/cluster-streams.jsonl}
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
PG_KEY="castmesh-bench-streams-$$"
PG_URL=""
PG_PID=""
NODE_IDS=(a b c)
# Per node: b drops an idle Source at once (cold runs there start from nothing); c keeps the
# default (10 s), which the `stale` test needs.
NODE_ENV=("" "CASTMESH_LIVE__IDLE_TIMEOUT_MS=0" "")

[ -n "$CASTMESH" ] || [[ " $TARGETS " != *" castmesh "* ]] || die "castmesh not built"
[ -n "$LOADGEN" ] || die "castmesh-loadgen not built"
command -v redis-server >/dev/null || die "redis-server missing"
command -v wrk >/dev/null || die "wrk missing (apt-get install wrk)"
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || [[ " $TARGETS " != *" nginx "* ]] || die "apt-get install nginx libnginx-mod-rtmp"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d /tmp/castmesh-streams.XXXXXX)
streams_cleanup() {
  bench_cleanup
  [ -z "$PG_URL" ] || "$REPO_DIR/scripts/pg-test" stop "$PG_KEY" >/dev/null 2>&1 || true
}
trap streams_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$(dirname "$OUT")"
log "run $RUN_ID; work $WORK; castmesh $CASTMESH; loadgen $LOADGEN; fd limit $(ulimit -n)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
metric() {  # metric PORT 'name{labels}' -> value (0 if absent)
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2; f=1} END {if (!f) print 0}'
}
nginx_bytes_out() {  # nginx_bytes_out HTTP_PORT -> server-wide bytes_out of /stat
  curl -s --max-time 2 "http://127.0.0.1:$1/stat" | grep -o '<bytes_out>[0-9]*' | head -1 | cut -d'>' -f2
}
now_s() { date +%s.%N; }

# emit JSON EXTRA_JSON : merges EXTRA into JSON, tags it with the run, appends to $OUT
emit() {
  python3 - "$1" "$2" "$RUN_ID" <<'EOF' | tee -a "$OUT" >/dev/null
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

# ---- publisher: ffmpeg live encoding (the issue's command line, with a fixed bit rate) ----
PUB_ARGS=(ffmpeg -hide_banner -loglevel error -nostdin -re
  -f lavfi -i "testsrc2=size=854x480:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=44100"
  -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -b:v 1000k -maxrate 1000k -bufsize 2000k -pix_fmt yuv420p
  -c:a aac -b:a 96k -f flv)
start_pub() {  # start_pub URL ; sets PUB_PID
  "${ON_CLIENT_CPU[@]}" "${PUB_ARGS[@]}" "$1" >"$WORK/ffmpeg-$(date +%s%N).log" 2>&1 &
  PUB_PID=$!
  BENCH_PIDS+=("$PUB_PID")
}

# ---- PostgreSQL and Redis (as bench/cluster/run_cluster.sh) ----
start_pg() {
  PG_URL=$("$REPO_DIR/scripts/pg-test" start "$PG_KEY") || die "pg-test start failed"
  local dir pid
  dir="${CASTMESH_PG_TEST_ROOT:-/tmp}/castmesh-pg-$(printf '%s' "$PG_KEY" | sha256sum | cut -c1-12)"
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -1 "$dir/data/postmaster.pid")
    taskset -a -p -c "$SERVER_CPU" "$pid" >/dev/null 2>&1 || true
    PG_PID=$pid
  fi
  log "postgres $PG_URL"
}
start_redis() {  # start_redis DIR ; sets REDIS_PID REDIS_PORT REDIS_URL
  local dir=$1 i
  REDIS_PORT=$(free_port)
  "${ON_SERVER_CPU[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --daemonize no --dir "$dir" --logfile "$dir/redis.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  BENCH_PIDS+=("$REDIS_PID")
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  for i in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  die "redis-server did not start"
}

# ---- castmesh nodes ----
NODE_PIDS=()
HTTP_PORTS=()
RTMP_PORTS=()
start_nodes() {  # DIR
  local dir=$1 i id http rtmp inter t ok p
  NODE_PIDS=(); HTTP_PORTS=(); RTMP_PORTS=()
  for i in 0 1 2; do
    id=${NODE_IDS[$i]}; http=$((CS_HTTP_BASE + i)); rtmp=$((CS_RTMP_BASE + i)); inter=$((CS_INTERNODE_BASE + i))
    env CASTMESH_SERVER__HOST=127.0.0.1 CASTMESH_SERVER__PORT="$http" CASTMESH_SERVER__THREADS=1 \
        CASTMESH_SERVER__LOG_LEVEL="${CM_LOG_LEVEL:-info}" \
        CASTMESH_RTMP__HOST=127.0.0.1 CASTMESH_RTMP__PORT="$rtmp" CASTMESH_HLS__ENABLED=true \
        CASTMESH_DATABASE__URL="$PG_URL" \
        CASTMESH_CLUSTER__ENABLED=true CASTMESH_CLUSTER__NODE_ID="$id" \
        CASTMESH_CLUSTER__ADVERTISE_ADDR="127.0.0.1:$inter" CASTMESH_CLUSTER__LISTEN="127.0.0.1:$inter" \
        CASTMESH_CLUSTER__HEARTBEAT_INTERVAL="$HB_S" CASTMESH_CLUSTER__SUSPECT_THRESHOLD="$SUSPECT_N" \
        CASTMESH_CLUSTER__OFFLINE_THRESHOLD="$OFFLINE_N" \
        CASTMESH_REDIS__URL="$REDIS_URL" CASTMESH_REDIS__KEY_PREFIX=cmstreams \
        CASTMESH_SERVER__CLUSTER_SECRET="bench-streams-secret-0123456789abcdef" \
        CASTMESH_RELAY__RELEASE_DELAY="$(awk "BEGIN{print $RELEASE_MS/1000}")" \
        ${NODE_ENV[$i]} ${CM_ENV:-} \
        "${ON_SERVER_CPU[@]}" "$CASTMESH" serve >"$dir/node-$id.log" 2>&1 &
    NODE_PIDS+=("$!"); HTTP_PORTS+=("$http"); RTMP_PORTS+=("$rtmp")
    BENCH_PIDS+=("$!")
    # One at a time: the first start applies the schema migrations.
    wait_port "$http" 30 || die "castmesh node $id did not start: $(tail -5 "$dir/node-$id.log")"
  done
  for t in $(seq 200); do
    ok=1
    for p in "${HTTP_PORTS[@]}"; do
      [ "$(curl -s --max-time 1 "http://127.0.0.1:$p/api/v1/cluster/nodes" | grep -o '"state":"alive"' | wc -l)" -ge 3 ] || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  log "warning: the nodes do not all see three alive nodes"
}
stop_nodes() {
  local p
  for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; forget_pid "$p"; done
  NODE_PIDS=()
}
wait_owner() {  # wait_owner OWNER PORT... : every node lists live/$STREAM owned by OWNER
  local owner=$1 t p ok
  shift
  for t in $(seq 150); do
    ok=1
    for p in "$@"; do
      curl -s --max-time 2 "http://127.0.0.1:$p/api/v1/streams" | grep -q "\"key\":\"live/$STREAM\".*\"owner\":\"$owner\"" || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

# ---- nginx-rtmp origin and edge ----
NG_PIDS=()
start_nginx() {  # start_nginx ROLE RTMP_PORT HTTP_PORT PULL_LINE ; echoes nothing, appends to NG_PIDS
  local role=$1 rtmp=$2 http=$3 pull=$4 d="$WORK/nginx-$1-$(date +%s%N)"
  mkdir -p "$d/tmp" "$d/static"
  sed -e "s#@DIR@#$d#g" -e "s#@RTMP_PORT@#$rtmp#g" -e "s#@HTTP_PORT@#$http#g" -e "s#@PULL@#$pull#g" \
      "$CS_DIR/nginx-edge.conf.template" >"$d/nginx.conf"
  [ "$role" != origin ] || [ ! -f "$WORK/segment.ts" ] || cp "$WORK/segment.ts" "$d/static/segment.ts"
  "${ON_SERVER_CPU[@]}" "$NGINX_BIN" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
  NG_PIDS+=("$!")
  BENCH_PIDS+=("$!")
  wait_port "$rtmp" 10 && wait_port "$http" 10 || die "nginx $role did not start: $(tail -5 "$d/error.log")"
}
stop_nginx() {
  local p
  for p in "${NG_PIDS[@]}"; do stop_pid "$p"; forget_pid "$p"; done
  NG_PIDS=()
}

# ---- tests ----
firstframe() {  # firstframe TARGET REP CASE PROTO URL SAMPLE_S N [edge_probe ready args...]
  local target=$1 rep=$2 case=$3 proto=$4 url=$5 dur=$6 n=$7 r
  shift 7
  log "$target rep $rep: first frame, $case $proto x$n ($url)"
  r=$("${ON_CLIENT_CPU[@]}" python3 "$PROBE" firstframe --loadgen "$LOADGEN" --mode "$proto-play" --url "$url" \
        -n "$n" --duration "$dur" --label "$target:$case:$proto" "$@" || echo '{"error":"edge_probe firstframe failed"}')
  emit "$r" "{\"test\":\"firstframe\",\"target\":\"$target\",\"rep\":$rep,\"case\":\"$case\",\"proto\":\"$proto\"}"
  log "  startup_ms $(jq -c .startup_ms <<<"$r") valid $(jq .valid <<<"$r") stale $(jq .stale <<<"$r") failed $(jq .failed <<<"$r")"
}

start_holder() {  # start_holder MODE URL : one player that keeps the relay up; sets HOLDER_PID
  "${ON_CLIENT_CPU[@]}" "$LOADGEN" --mode "$1" --url "$2" -n 1 --duration 900 --no-progress --label holder \
      >"$WORK/holder.json" 2>"$WORK/holder.err" &
  HOLDER_PID=$!
  BENCH_PIDS+=("$HOLDER_PID")
}
stop_holder() { stop_pid "$HOLDER_PID"; forget_pid "$HOLDER_PID"; HOLDER_PID=""; }

# relaycost TARGET REP WHERE N PLAY_URL ORIGIN_PID EDGE_PID COUNTER_FN
#   WHERE = edge | origin; N players (RTMP) at PLAY_URL; COUNTER_FN prints the origin's egress
#   counters as JSON.
relaycost() {
  local target=$1 rep=$2 where=$3 n=$4 url=$5 opid=$6 epid=$7 counters=$8 ready lg_pid="" lg="null" c0 c1 t0 t1 om em i
  log "$target rep $rep: relay cost, $n players on the $where"
  if [ "$n" -gt 0 ]; then
    ready="$WORK/ready-$target-$rep-$where-$n"
    "${ON_CLIENT_CPU[@]}" "$LOADGEN" --mode rtmp-play --url "$url" -n "$n" --ramp-per-sec 1000 \
        --duration $((RC_SETTLE + RC_WINDOW + 2)) --ready-file "$ready" --no-progress --rcvlowat "$RCVLOWAT" \
        --label "$target:$where:$n" >"$WORK/rc.json" 2>"$WORK/rc.err" &
    lg_pid=$!
    BENCH_PIDS+=("$lg_pid")
    for i in $(seq 300); do [ -f "$ready" ] && break; kill -0 "$lg_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  sleep "$RC_SETTLE"
  c0=$($counters); t0=$(now_s)
  "${ON_CLIENT_CPU[@]}" "$BENCH_DIR/measure.sh" "$epid" "$RC_WINDOW" >"$WORK/em.json" &
  local em_pid=$!
  om=$("${ON_CLIENT_CPU[@]}" "$BENCH_DIR/measure.sh" "$opid" "$RC_WINDOW")
  wait "$em_pid" || true
  em=$(cat "$WORK/em.json")
  c1=$($counters); t1=$(now_s)
  if [ -n "$lg_pid" ]; then
    wait "$lg_pid" || true
    forget_pid "$lg_pid"
    lg=$(tail -1 "$WORK/rc.json")
    [ -n "$lg" ] || lg=null
  fi
  emit "{}" "$(python3 -c '
import json, sys
c0, c1 = json.loads(sys.argv[1]), json.loads(sys.argv[2]); dt = float(sys.argv[4]) - float(sys.argv[3])
rate = {k: round((c1[k] - c0[k]) / dt) for k in ("relay", "all", "edge_relay_bytes", "edge_bytes_out") if k in c0 and k in c1}
print(json.dumps({"test": "relaycost", "target": sys.argv[5], "rep": int(sys.argv[6]), "where": sys.argv[7], "players": int(sys.argv[8]),
                  "origin_m": json.loads(sys.argv[9]), "edge_m": json.loads(sys.argv[10]), "origin_out_bytes_per_s": rate,
                  "counters_end": c1, "window_s": round(dt, 2), "loadgen": json.loads(sys.argv[11])}))' \
      "$c0" "$c1" "$t0" "$t1" "$target" "$rep" "$where" "$n" "$om" "$em" "$lg")"
  log "  origin cpu $(jq .cpu_pct <<<"$om")% edge cpu $(jq .cpu_pct <<<"$em")% origin out $(python3 -c 'import json,sys; c0,c1=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print({k: round((c1[k]-c0[k])/(float(sys.argv[4])-float(sys.argv[3]))) for k in ("relay", "all", "edge_relay_bytes", "edge_bytes_out") if k in c0})' "$c0" "$c1" "$t0" "$t1") B/s; counters $c1"
  sleep 1
}

cm_counters() {  # the origin (node a) egress counters and the relay gauges
  local a=${HTTP_PORTS[0]} b=${HTTP_PORTS[1]}
  curl -s --max-time 2 "http://127.0.0.1:$a/metrics" >"$WORK/ma.txt"
  curl -s --max-time 2 "http://127.0.0.1:$b/metrics" >"$WORK/mb.txt"
  python3 - "$WORK/ma.txt" "$WORK/mb.txt" <<'EOF'
import json, sys
def prom(p):
    d = {}
    for l in open(p):
        if l and not l.startswith("#"):
            k, _, v = l.strip().rpartition(" ")
            try: d[k] = float(v)
            except ValueError: pass
    return d
a, b = prom(sys.argv[1]), prom(sys.argv[2])
sent = {k: v for k, v in a.items() if k.startswith("castmesh_bytes_sent_total")}
print(json.dumps({"relay": a.get('castmesh_bytes_sent_total{protocol="relay"}', 0), "all": sum(sent.values()),
                  "origin_relay_connections": a.get('castmesh_connections{protocol="relay"}', 0),
                  "edge_relays_active": b.get("castmesh_relays_active", 0),
                  "edge_relay_bytes": b.get("castmesh_relay_bytes_total", 0)}))
EOF
}
ng_counters() {
  local o e
  o=$(nginx_bytes_out "$NG_ORIGIN_HTTP"); e=$(nginx_bytes_out "$NG_EDGE_HTTP")
  printf '{"all":%s,"edge_bytes_out":%s}\n' "${o:-0}" "${e:-0}"
}

wrk_run() {  # wrk_run TARGET REP WHAT URL [PORT for hit/miss counters]
  local target=$1 rep=$2 what=$3 url=$4 port=${5:-} out h0=0 m0=0 h1=0 m1=0
  if [ -n "$port" ]; then h0=$(metric "$port" castmesh_hls_proxy_hits_total); m0=$(metric "$port" castmesh_hls_proxy_misses_total); fi
  out=$("${ON_CLIENT_CPU[@]}" wrk -t1 -c"$WRK_C" -d"${WRK_S}s" "$url" 2>&1 || true)
  if [ -n "$port" ]; then h1=$(metric "$port" castmesh_hls_proxy_hits_total); m1=$(metric "$port" castmesh_hls_proxy_misses_total); fi
  emit "{}" "$(python3 -c '
import json, re, sys
o = sys.argv[1]
def num(pat):
    m = re.search(pat, o)
    return float(m.group(1)) if m else None
print(json.dumps({"test": "wrk", "target": sys.argv[2], "rep": int(sys.argv[3]), "what": sys.argv[4], "url": sys.argv[5],
                  "connections": int(sys.argv[6]), "seconds": int(sys.argv[7]),
                  "requests_per_s": num(r"Requests/sec:\s+([0-9.]+)"), "requests": num(r"(\d+) requests in"),
                  "non_2xx": num(r"Non-2xx or 3xx responses: (\d+)") or 0, "socket_errors": "Socket errors" in o,
                  "proxy_hits": float(sys.argv[8]) - float(sys.argv[9]), "proxy_misses": float(sys.argv[10]) - float(sys.argv[11]),
                  "raw": o[-600:]}))' "$out" "$target" "$rep" "$what" "$url" "$WRK_C" "$WRK_S" "$h1" "$h0" "$m1" "$m0")"
  log "  wrk $what: $(grep -E 'Requests/sec|Non-2xx' <<<"$out" | tr -s ' ' | tr '\n' ' ')"
}

run_castmesh() {  # REP
  local rep=$1 dir="$WORK/castmesh-$rep" a b c ra rb url_fa url_fb seg r
  mkdir -p "$dir"
  start_redis "$dir"
  start_nodes "$dir"
  a=${HTTP_PORTS[0]}; b=${HTTP_PORTS[1]}; c=${HTTP_PORTS[2]}; ra=${RTMP_PORTS[0]}; rb=${RTMP_PORTS[1]}
  start_pub "rtmp://127.0.0.1:$ra/live/$STREAM"
  wait_owner a "$a" "$b" "$c" || die "the stream is not listed with owner a: $(curl -s "http://127.0.0.1:$b/api/v1/streams")"
  sleep 3   # a full GOP cache and a few HLS segments
  url_fa="http://127.0.0.1:$a/live/live/$STREAM.flv"; url_fb="http://127.0.0.1:$b/live/live/$STREAM.flv"

  if [[ " $TESTS " == *" firstframe "* ]]; then
    firstframe castmesh "$rep" local rtmp "rtmp://127.0.0.1:$ra/live/$STREAM" "$CM_SAMPLE_S" "$LOCAL_N"
    firstframe castmesh "$rep" local flv "$url_fa" "$CM_SAMPLE_S" "$LOCAL_N"
    firstframe castmesh "$rep" cold rtmp "rtmp://127.0.0.1:$rb/live/$STREAM" "$CM_SAMPLE_S" "$COLD_N" \
        --ready castmesh --edge-port "$b" --origin-port "$a" --settle-s "$COLD_SETTLE_S"
    firstframe castmesh "$rep" cold flv "$url_fb" "$CM_SAMPLE_S" "$COLD_N" \
        --ready castmesh --edge-port "$b" --origin-port "$a" --settle-s "$COLD_SETTLE_S"
    start_holder flv-play "$url_fb"
    sleep 1
    firstframe castmesh "$rep" warm rtmp "rtmp://127.0.0.1:$rb/live/$STREAM" "$CM_SAMPLE_S" "$WARM_N" --settle-s 0.1
    firstframe castmesh "$rep" warm flv "$url_fb" "$CM_SAMPLE_S" "$WARM_N" --settle-s 0.1
    stop_holder
  fi

  if [[ " $TESTS " == *" stale "* ]]; then
    log "castmesh rep $rep: stale check, $STALE_N HTTP-FLV plays on c, ${STALE_AFTER_S} s after each release"
    r=$("${ON_CLIENT_CPU[@]}" python3 "$PROBE" stale --port "$c" --path "/live/live/$STREAM.flv" -n "$STALE_N" \
          --after-release-s "$STALE_AFTER_S" --label castmesh || echo '{"error":"edge_probe stale failed"}')
    emit "$r" "{\"test\":\"stale\",\"target\":\"castmesh\",\"rep\":$rep}"
    log "  stale runs $(jq .stale_runs <<<"$r")/$STALE_N, jump $(jq -c .jump_ms <<<"$r"), live keyframe $(jq -c .live_keyframe_ms <<<"$r")"
  fi

  if [[ " $TESTS " == *" relaycost "* ]]; then
    relaycost castmesh "$rep" edge 0 "" "${NODE_PIDS[0]}" "${NODE_PIDS[1]}" cm_counters
    relaycost castmesh "$rep" edge 1 "rtmp://127.0.0.1:$rb/live/$STREAM" "${NODE_PIDS[0]}" "${NODE_PIDS[1]}" cm_counters
    relaycost castmesh "$rep" edge "$PLAYERS" "rtmp://127.0.0.1:$rb/live/$STREAM" "${NODE_PIDS[0]}" "${NODE_PIDS[1]}" cm_counters
    relaycost castmesh "$rep" origin "$PLAYERS" "rtmp://127.0.0.1:$ra/live/$STREAM" "${NODE_PIDS[0]}" "${NODE_PIDS[1]}" cm_counters
  fi

  if [[ " $TESTS " == *" hls "* ]]; then
    log "castmesh rep $rep: HLS playlists of a, b, c polled every $POLL_MS ms for $HLS_S s"
    r=$("${ON_CLIENT_CPU[@]}" python3 "$PROBE" hls-lag --origin "http://127.0.0.1:$a/live/live/$STREAM.m3u8" \
          --edge "http://127.0.0.1:$b/live/live/$STREAM.m3u8" --edge "http://127.0.0.1:$c/live/live/$STREAM.m3u8" \
          --duration "$HLS_S" --poll-ms "$POLL_MS" --label castmesh || echo '{"error":"edge_probe hls-lag failed"}')
    emit "$r" "{\"test\":\"hls\",\"target\":\"castmesh\",\"rep\":$rep}"
    log "  edge b $(jq -c .edges.edge0.delay_ms <<<"$r"), edge c $(jq -c .edges.edge1.delay_ms <<<"$r")"
    # One segment, newest on the origin (so it stays in a's window for the first wrk run).
    seg=$(curl -s "http://127.0.0.1:$a/live/live/$STREAM.m3u8" | grep -v '^#' | tail -1)
    curl -s -o "$WORK/segment.ts" "http://127.0.0.1:$b/live/live/$seg"
    wrk_run castmesh "$rep" "segment on the origin (a, local store)" "http://127.0.0.1:$a/live/live/$seg"
    wrk_run castmesh "$rep" "segment on an edge (b, proxy cache)" "http://127.0.0.1:$b/live/live/$seg" "$b"
    wrk_run castmesh "$rep" "playlist on an edge (b, 50 ms cache)" "http://127.0.0.1:$b/live/live/$STREAM.m3u8" "$b"
  fi

  if [[ " $TESTS " == *" failover "* ]]; then
    log "castmesh rep $rep: failover (SIGKILL a; publisher to b once b sees a offline; player on c)"
    r=$("${ON_CLIENT_CPU[@]}" python3 "$PROBE" failover --kill-pid "${NODE_PIDS[0]}" --victim a \
          --observer-ports "$b" "$c" --publish-port "$b" --new-owner b --player-port "$c" --stream "live/$STREAM" \
          --publisher-log "$dir/ffmpeg-failover.log" --label castmesh \
          -- "${PUB_ARGS[@]}" "rtmp://127.0.0.1:$rb/live/$STREAM" || echo '{"error":"edge_probe failover failed"}')
    wait "${NODE_PIDS[0]}" 2>/dev/null || true   # reap the killed node
    emit "$r" "{\"test\":\"failover\",\"target\":\"castmesh\",\"rep\":$rep,\"heartbeat_interval_s\":$HB_S,\"suspect_threshold\":$SUSPECT_N,\"offline_threshold\":$OFFLINE_N}"
    log "  kill->offline $(jq -c .kill_to_offline_ms <<<"$r") republish->video on c $(jq .republish_to_first_video_ms <<<"$r") ms (b publish $(jq .republish_to_local_publish_ms <<<"$r") ms)"
  fi
  stop_publisher
  stop_nodes
  stop_pid "$REDIS_PID"; forget_pid "$REDIS_PID"
  cp "$dir"/node-*.log "$WORK/" 2>/dev/null || true
}

run_nginx() {  # REP
  local rep=$1 origin_pid edge_pid
  start_nginx origin "$NG_ORIGIN_RTMP" "$NG_ORIGIN_HTTP" ""
  origin_pid=${NG_PIDS[0]}
  start_nginx edge "$NG_EDGE_RTMP" "$NG_EDGE_HTTP" "pull rtmp://127.0.0.1:$NG_ORIGIN_RTMP/live;"
  edge_pid=${NG_PIDS[1]}
  start_pub "rtmp://127.0.0.1:$NG_ORIGIN_RTMP/live/$STREAM"
  sleep 4
  if [[ " $TESTS " == *" firstframe "* ]]; then
    firstframe nginx "$rep" local rtmp "rtmp://127.0.0.1:$NG_ORIGIN_RTMP/live/$STREAM" "$NG_SAMPLE_S" "$LOCAL_N"
    firstframe nginx "$rep" cold rtmp "rtmp://127.0.0.1:$NG_EDGE_RTMP/live/$STREAM" "$NG_SAMPLE_S" "$COLD_N" \
        --ready nginx --origin-stat-port "$NG_ORIGIN_HTTP" --settle-s 0.3
    start_holder rtmp-play "rtmp://127.0.0.1:$NG_EDGE_RTMP/live/$STREAM"
    sleep 1
    firstframe nginx "$rep" warm rtmp "rtmp://127.0.0.1:$NG_EDGE_RTMP/live/$STREAM" "$NG_SAMPLE_S" "$WARM_N" --settle-s 0.1
    stop_holder
  fi
  if [[ " $TESTS " == *" relaycost "* ]]; then
    sleep 1
    relaycost nginx "$rep" edge 0 "" "$origin_pid" "$edge_pid" ng_counters
    relaycost nginx "$rep" edge 1 "rtmp://127.0.0.1:$NG_EDGE_RTMP/live/$STREAM" "$origin_pid" "$edge_pid" ng_counters
    relaycost nginx "$rep" edge "$PLAYERS" "rtmp://127.0.0.1:$NG_EDGE_RTMP/live/$STREAM" "$origin_pid" "$edge_pid" ng_counters
    relaycost nginx "$rep" origin "$PLAYERS" "rtmp://127.0.0.1:$NG_ORIGIN_RTMP/live/$STREAM" "$origin_pid" "$edge_pid" ng_counters
  fi
  if [[ " $TESTS " == *" hls "* ]] && [ -f "$WORK/segment.ts" ]; then
    wrk_run nginx "$rep" "the same segment as a static file (sendfile)" "http://127.0.0.1:$NG_ORIGIN_HTTP/static/segment.ts"
  fi
  stop_publisher
  stop_nginx
}

emit "{}" "$(printf '{"test":"machine","machine":%s,"ffmpeg":"%s","targets":"%s","tests":"%s","reps":%d,"local_n":%d,"cold_n":%d,"warm_n":%d,"players":%d,"release_delay_ms":%d,"heartbeat_interval_s":%s,"server_cpu":"%s","client_cpu":"%s","binary_note":"%s","publisher":"%s"}' \
  "$(machine_info)" "$(ffmpeg -version | head -1 | cut -d' ' -f3)" "$TARGETS" "$TESTS" "$REPS" "$LOCAL_N" "$COLD_N" "$WARM_N" "$PLAYERS" \
  "$RELEASE_MS" "$HB_S" "$SERVER_CPU" "$CLIENT_CPU" "${BINARY_NOTE:-}" "${PUB_ARGS[*]}")"
[[ " $TARGETS " != *" castmesh "* ]] || start_pg
for rep in $(seq "$REPS"); do
  for kind in $TARGETS; do
    case $kind in
      castmesh) run_castmesh "$rep" ;;
      nginx) run_nginx "$rep" ;;
      *) die "unknown target $kind" ;;
    esac
    sleep 1
  done
done
log "done: $OUT (run $RUN_ID)"
python3 "$CS_DIR/summarize.py" "$OUT" --run "$RUN_ID"
