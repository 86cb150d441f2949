#!/usr/bin/env bash
# Samples one process over a window and prints one JSON line:
#   {"pid":P,"window_s":S,"cpu_pct":C,"rss_kb_start":..,"rss_kb_end":..,"rss_kb_max":..,"rss_kb_mean":..,"threads":T}
# cpu_pct = (utime+stime of all threads, /proc/PID/stat fields 14+15) used during the window,
# as a percentage of ONE core (100 = one core busy all the time).
# RSS = VmRSS from /proc/PID/status, sampled every INTERVAL seconds (default 0.5).
# Usage: measure.sh PID SECONDS [INTERVAL]
set -euo pipefail
pid=${1:?usage: measure.sh PID SECONDS [INTERVAL]}
window=${2:?usage: measure.sh PID SECONDS [INTERVAL]}
interval=${3:-0.5}
hz=$(getconf CLK_TCK)

ticks() {  # utime+stime; the comm field may contain spaces, so parse after the last ')'
  local stat rest
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || { echo -1; return; }
  rest=${stat##*) }
  # fields after ')' start at field 3 (state): utime is field 14 -> index 11, stime 15 -> 12
  read -r -a f <<<"$rest"
  echo $(( f[11] + f[12] ))
}
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0; }

t0=$(date +%s.%N)
c0=$(ticks)
r0=$(rss)
rmax=$r0; rsum=0; rn=0
end=$(awk -v a="$t0" -v w="$window" 'BEGIN{printf "%.3f", a+w}')
while :; do
  now=$(date +%s.%N)
  if awk -v n="$now" -v e="$end" 'BEGIN{exit !(n>=e)}'; then break; fi
  left=$(awk -v n="$now" -v e="$end" -v i="$interval" 'BEGIN{d=e-n; printf "%.3f", (d<i?d:i)}')
  sleep "$left"
  r=$(rss)
  [ -z "$r" ] && r=0
  (( r > rmax )) && rmax=$r
  rsum=$(( rsum + r )); rn=$(( rn + 1 ))
done
c1=$(ticks)
t1=$(date +%s.%N)
r1=$(rss)
alive=true
[ -d "/proc/$pid" ] || alive=false
awk -v pid="$pid" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$hz" -v r0="$r0" -v r1="$r1" \
    -v rmax="$rmax" -v rsum="$rsum" -v rn="$rn" -v th="$(threads)" -v alive="$alive" 'BEGIN{
  w = t1 - t0; cpu = (c0 < 0 || c1 < 0) ? -1 : (c1 - c0) / hz / w * 100;
  printf "{\"pid\":%d,\"window_s\":%.2f,\"cpu_pct\":%.1f,\"rss_kb_start\":%d,\"rss_kb_end\":%d,\"rss_kb_max\":%d,\"rss_kb_mean\":%d,\"threads\":%d,\"alive\":%s}\n",
    pid, w, cpu, r0, r1, rmax, (rn ? rsum / rn : r0), th, alive }'
