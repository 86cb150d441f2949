#!/usr/bin/env python3
"""Publish-to-HLS delay: time from a keyframe reaching the server to the segment it closes
being listed in the playlist.

Starts `castmesh-loadgen --mode rtmp-publish -n 1 --keyframe-log LOG` (which appends the wall
time at which each write carrying a keyframe completed), polls the playlist every --poll-ms
over one keep-alive HTTP connection, and records when each new segment URI first appears.
A segment is closed by the first keyframe after it, so its delay is
    first_seen(segment) - wall_time(latest keyframe written before first_seen).
Segments already listed on the first successful poll are ignored. Prints one JSON line.
Only 127.0.0.1 URLs are accepted.
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--rtmp-url", required=True, help="rtmp://127.0.0.1:PORT/APP/STREAM to publish to")
    ap.add_argument("--m3u8", required=True, help="http://127.0.0.1:PORT/.../STREAM.m3u8")
    ap.add_argument("--file", required=True, help="FLV file to publish (looped in real time)")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--poll-ms", type=float, default=5.0)
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.m3u8)
    if url.hostname not in ("127.0.0.1", "localhost") or not args.rtmp_url.startswith(("rtmp://127.0.0.1:", "rtmp://localhost:")):
        sys.exit("hls_delay: only 127.0.0.1 URLs are accepted")
    path = url.path + (("?" + url.query) if url.query else "")

    fd, kflog = tempfile.mkstemp(prefix="hls-delay-kf-", suffix=".log")
    os.close(fd)
    pub = subprocess.Popen(
        [args.loadgen, "--mode", "rtmp-publish", "--url", args.rtmp_url, "-n", "1", "--file", args.file,
         "--duration", str(args.duration + 1), "--keyframe-log", kflog, "--no-progress", "--label", "hls-delay"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    t_start = time.time()
    seen = {}            # segment uri -> (first seen = response time, request time of the poll before)
    initial = None       # segments listed at the first successful poll
    first_playlist_s = None
    polls = errors = 0
    prev_req = None      # request time of the previous successful poll
    conn = None
    deadline = t_start + args.duration
    period = args.poll_ms / 1000.0
    try:
        while time.time() < deadline:
            t_poll = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=2)
                conn.request("GET", path, headers={"Cache-Control": "no-cache"})
                resp = conn.getresponse()
                body = resp.read().decode("utf-8", "replace")
                now = time.time()
                polls += 1
                if resp.status == 200:
                    uris = [l.strip() for l in body.splitlines() if l.strip() and not l.startswith("#")]
                    if initial is None:
                        initial = set(uris)
                        first_playlist_s = now - t_start
                    for u in uris:
                        if u not in seen and u not in initial:
                            seen[u] = (now, prev_req if prev_req is not None else t_poll)
                prev_req = t_poll
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            sleep = period - (time.time() - t_poll)
            if sleep > 0:
                time.sleep(sleep)
    finally:
        if conn is not None:
            conn.close()
        try:
            out, _ = pub.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pub.send_signal(signal.SIGTERM)
            out, _ = pub.communicate()

    keyframes = []
    with open(kflog) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                keyframes.append((float(parts[1]), int(parts[2])))
    os.unlink(kflog)
    keyframes.sort()

    # Upper bound: first response listing the segment; lower bound: the request of the poll
    # before it (which did not list it yet), both against the keyframe that closed the segment.
    delays, lows = [], []
    for uri, (t, t_prev) in sorted(seen.items(), key=lambda kv: kv[1][0]):
        before = [k for k in keyframes if k[0] <= t]
        if before:
            delays.append((t - before[-1][0]) * 1000.0)
            lows.append(max(0.0, (t_prev - before[-1][0]) * 1000.0))
    pub_result = None
    try:
        pub_result = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
    except json.JSONDecodeError:
        pass
    result = {
        "label": args.label,
        "m3u8": args.m3u8,
        "polls": polls,
        "poll_errors": errors,
        "poll_ms": args.poll_ms,
        "first_playlist_s": round(first_playlist_s, 3) if first_playlist_s is not None else None,
        "keyframes": len(keyframes),
        "segments": len(delays),
        "delay_ms": {
            "min": round(min(delays), 1) if delays else None,
            "p50": round(statistics.median(delays), 1) if delays else None,
            "p90": round(percentile(delays, 0.9), 1) if delays else None,
            "max": round(max(delays), 1) if delays else None,
        },
        "delays_ms": [round(d, 1) for d in delays],
        "delay_lower_bound_ms": {
            "p50": round(statistics.median(lows), 1) if lows else None,
            "max": round(max(lows), 1) if lows else None,
        },
        "publisher": {k: pub_result.get(k) for k in ("connected", "kept_up", "errors")} if pub_result else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
