# Shared helpers for bench/run_fanout.sh, run_ingest.sh and hls_delay.sh (sourced, not run).
# Servers run pinned to core $SERVER_CPU, clients (ffmpeg, castmesh-loadgen, probes) to $CLIENT_CPU.
# Every process started here is recorded in BENCH_PIDS and stopped by PID on exit.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
NGINX_RTMP_PORT=${NGINX_RTMP_PORT:-21935}
NGINX_HTTP_PORT=${NGINX_HTTP_PORT:-28080}
CM_RTMP_PORT=${CM_RTMP_PORT:-11935}
CM_HTTP_PORT=${CM_HTTP_PORT:-18080}
STREAM_KEY=${STREAM_KEY:-bench}
# Benchmark processes get a higher CFS priority than background work (e.g. compilers) on the
# same cores; set BENCH_NICE=0 to disable.
BENCH_NICE=${BENCH_NICE:--10}

# Command prefixes (arrays, not functions, so that `"${ON_SERVER_CPU[@]}" cmd &` gives $! = cmd's PID:
# nice and taskset exec the command).
ON_SERVER_CPU=(nice -n "$BENCH_NICE" taskset -c "$SERVER_CPU")
ON_CLIENT_CPU=(nice -n "$BENCH_NICE" taskset -c "$CLIENT_CPU")

find_bin() {  # first existing path among the arguments
  local p
  for p in "$@"; do [ -x "$p" ] && { echo "$p"; return 0; }; done
  return 1
}
LOADGEN=${LOADGEN:-$(find_bin "$REPO_DIR/build/bench/castmesh-loadgen" "$REPO_DIR/build-bench/bench/castmesh-loadgen" || true)}
CASTMESH=${CASTMESH:-$(find_bin "$REPO_DIR/build/src/castmesh" "$REPO_DIR/build-bench/src/castmesh" || true)}

BENCH_PIDS=()
WORK=""

# With autogroup scheduling (kernel.sched_autogroup_enabled=1) CPU is shared per session first,
# so a per-process nice does not beat other sessions' background work (e.g. compilers). The
# scripts therefore re-run themselves in a new session (setsid) and raise the priority of that
# session's autogroup only, for the duration of the run. BENCH_AUTOGROUP_NICE=off disables it.
BENCH_AUTOGROUP_NICE=${BENCH_AUTOGROUP_NICE:--19}
bench_reexec() {  # bench_reexec SCRIPT ARGS... ; call first thing in a script
  local script=$1
  shift
  if [ -z "${BENCH_IN_SESSION:-}" ] && [ "$BENCH_AUTOGROUP_NICE" != off ] && [ -w /proc/self/autogroup ]; then
    export BENCH_IN_SESSION=1
    exec setsid --wait bash "$script" "$@"
  fi
  if [ -n "${BENCH_IN_SESSION:-}" ] && [ "$BENCH_AUTOGROUP_NICE" != off ]; then
    echo "$BENCH_AUTOGROUP_NICE" >/proc/self/autogroup 2>/dev/null || true
  fi
}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

bench_init() {  # creates $WORK, raises the fd limit, installs the cleanup trap
  [ -n "$LOADGEN" ] || die "castmesh-loadgen not built (cmake --build build --target castmesh-loadgen)"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  WORK=$(mktemp -d /tmp/castmesh-bench.XXXXXX)
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  log "work dir $WORK; loadgen $LOADGEN; castmesh ${CASTMESH:-<not built>}; fd limit $(ulimit -n)"
}

bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do stop_pid "$p"; done
  if [ -n "$WORK" ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; fi
}

stop_pid() {  # SIGTERM, then SIGKILL after 5 s; only ever a PID this script started
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local p keep=()
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

wait_port() {  # wait_port PORT [TIMEOUT_S]
  local port=$1 t=${2:-10} i
  for i in $(seq $((t * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

gen_input() {  # gen_input OUT.flv : ~1 Mbit/s 640x360 testsrc2, x264 900k, AAC 96k, GOP 60 (2 s), 30 s
  local out=$1
  log "generating $out"
  "${ON_CLIENT_CPU[@]}" ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 -t 30 \
    -c:v libx264 -preset veryfast -tune zerolatency -b:v 900k -maxrate 900k -bufsize 1800k \
    -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 96k -ar 44100 -ac 2 -f flv "$out" || die "ffmpeg failed to generate $out"
}

# start_server KIND HLS   KIND = nginx | castmesh, HLS = on | off
# Sets SERVER_PID, SERVER_DIR, RTMP_URL, FLV_URL, HLS_URL (stream $STREAM_KEY) and RTMP_BASE.
start_server() {
  local kind=$1 hls=$2
  SERVER_DIR="$WORK/$kind-$(date +%s%N)"
  mkdir -p "$SERVER_DIR/hls" "$SERVER_DIR/tmp"
  case $kind in
    nginx)
      sed -e "s#@DIR@#$SERVER_DIR#g" -e "s#@RTMP_PORT@#$NGINX_RTMP_PORT#g" -e "s#@HTTP_PORT@#$NGINX_HTTP_PORT#g" \
          -e "s#@HLS@#$hls#g" "$BENCH_DIR/nginx.conf.template" >"$SERVER_DIR/nginx.conf"
      "${ON_SERVER_CPU[@]}" "$NGINX_BIN" -p "$SERVER_DIR" -e "$SERVER_DIR/error.log" -c "$SERVER_DIR/nginx.conf" \
        >"$SERVER_DIR/stdout.log" 2>&1 &
      SERVER_PID=$!
      RTMP_BASE="rtmp://127.0.0.1:$NGINX_RTMP_PORT/live"
      FLV_URL=""   # Debian's nginx-rtmp has no HTTP-FLV output
      HLS_URL="http://127.0.0.1:$NGINX_HTTP_PORT/hls/$STREAM_KEY.m3u8"
      wait_port "$NGINX_RTMP_PORT" 10 || die "nginx did not start: $(tail -5 "$SERVER_DIR/error.log" 2>/dev/null)"
      ;;
    castmesh)
      [ -n "$CASTMESH" ] || die "castmesh binary not found (build/src/castmesh)"
      local hls_bool=false
      [ "$hls" = on ] && hls_bool=true
      env CASTMESH_SERVER__HOST=127.0.0.1 CASTMESH_SERVER__PORT="$CM_HTTP_PORT" CASTMESH_SERVER__THREADS=1 \
          CASTMESH_SERVER__LOG_LEVEL="${CM_LOG_LEVEL:-warn}" \
          CASTMESH_RTMP__HOST=127.0.0.1 CASTMESH_RTMP__PORT="$CM_RTMP_PORT" CASTMESH_HLS__ENABLED="$hls_bool" \
          ${CM_ENV:-} \
          "${ON_SERVER_CPU[@]}" "$CASTMESH" serve >"$SERVER_DIR/stdout.log" 2>&1 &
      SERVER_PID=$!
      RTMP_BASE="rtmp://127.0.0.1:$CM_RTMP_PORT/live"
      FLV_URL="http://127.0.0.1:$CM_HTTP_PORT/live/live/$STREAM_KEY.flv"
      HLS_URL="http://127.0.0.1:$CM_HTTP_PORT/live/live/$STREAM_KEY.m3u8"
      wait_port "$CM_RTMP_PORT" 10 && wait_port "$CM_HTTP_PORT" 10 ||
        die "castmesh did not start: $(tail -5 "$SERVER_DIR/stdout.log" 2>/dev/null)"
      ;;
    *) die "unknown server $kind" ;;
  esac
  BENCH_PIDS+=("$SERVER_PID")
  RTMP_URL="$RTMP_BASE/$STREAM_KEY"
}

stop_server() {
  stop_pid "$SERVER_PID"
  forget_pid "$SERVER_PID"
  SERVER_PID=""
}

# start_ffmpeg_publisher IN.flv URL : real-time, looping, stream copy. Sets PUB_PID.
start_ffmpeg_publisher() {
  "${ON_CLIENT_CPU[@]}" ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$1" \
    -c copy -f flv "$2" >"$WORK/ffmpeg-$(date +%s%N).log" 2>&1 &
  PUB_PID=$!
  BENCH_PIDS+=("$PUB_PID")
}

stop_publisher() {
  stop_pid "$PUB_PID"
  forget_pid "$PUB_PID"
  PUB_PID=""
}

machine_info() {  # one JSON object describing the machine
  local model mem kernel
  model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
  kernel=$(uname -r)
  printf '{"nproc":%d,"cpu":"%s","mem":"%s","kernel":"%s","date":"%s","loadavg":"%s","nginx":"%s","castmesh_commit":"%s"}\n' \
    "$(nproc)" "$model" "$mem" "$kernel" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$("$NGINX_BIN" -v 2>&1 | sed 's/.*\///')" "$(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null) (binary ${CASTMESH:-none}, built $(date -u -r "${CASTMESH:-/nonexistent}" +%H:%MZ 2>/dev/null))"
}
