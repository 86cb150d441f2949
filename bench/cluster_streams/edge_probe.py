#!/usr/bin/env python3
"""Clients and timers for bench/cluster_streams/run_edge.sh (Python 3 standard library only).

Subcommands (each prints one JSON line on stdout; only 127.0.0.1 is ever contacted):

  firstframe  N sequential single-player runs of castmesh-loadgen (`-n 1`), each measuring
              TCP connect -> first complete video keyframe tag (`startup_ms`, loadgen's own
              monotonic clock, taken when the bytes are read). Before each run it can wait
              until no relay is left from the previous one (castmesh: the edge's
              castmesh_relays_active == 0 and the origin's relay connections == 0; nginx-rtmp:
              the origin's /stat lists only the publisher) and then --settle-s more, so every
              run is cold. A run whose media timestamps jump by more than 1 s (loadgen `gaps`)
              began with stale frames (see `stale`) and is counted apart.
  stale       Cold HTTP-FLV plays on one edge node a short time after its previous relay was
              released: reports whether the first keyframe received belongs to the previous
              relay (a timestamp jump follows it), the size of the jump, and when the first
              keyframe after the jump (the live one) arrived.
  hls-lag     Polls the origin's and the edges' playlists every --poll-ms ms (one keep-alive
              connection and one thread each, one monotonic clock) and, per segment name,
              compares when it first appears on each edge with when it first appeared on the
              origin. Segments listed at the first poll are ignored.
  failover    Keeps an HTTP-FLV player on one node, SIGKILLs the owner (a PID the calling script
              started), polls GET /api/v1/cluster/nodes of the survivors until the dead node is
              offline, then starts the given publisher command towards another node and times:
              the new node's local publish, the registry listing the new owner on the player's
              node, and the first video frame the player receives after the republish.

Percentiles are nearest-rank over the samples given (p99 of 30 samples is the slowest one).
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def r1(v):
    return None if v is None else round(v, 1)


def summary(values):
    return {"n": len(values), "min": r1(min(values)) if values else None, "p50": r1(pct(values, 0.5)),
            "p90": r1(pct(values, 0.9)), "p99": r1(pct(values, 0.99)), "max": r1(max(values)) if values else None}


def local_only(url):
    u = urllib.parse.urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("edge_probe: only 127.0.0.1 is accepted: " + url)
    return u


class Http:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port, timeout=2.0):
        self.port, self.timeout, self.conn = port, timeout, None

    def get(self, path):
        """(status, body bytes) or (None, b"") on a connection error."""
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.conn.request("GET", path, headers={"Cache-Control": "no-cache"})
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, body
            except (OSError, http.client.HTTPException):
                self.close()
        return None, b""

    def json(self, path):
        st, body = self.get(path)
        if st != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def prom(text):
    """Prometheus text -> {'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def metrics(port):
    st, body = Http(port).get("/metrics")
    return prom(body.decode("utf-8", "replace")) if st == 200 else {}


def nginx_nclients(stat_port):
    """Clients of the first stream on an nginx-rtmp /stat page (publisher + relays + players)."""
    st, body = Http(stat_port).get("/stat")
    if st != 200:
        return None
    text = body.decode("utf-8", "replace")
    i = text.find("<stream>")
    if i < 0:
        return 0
    j = text.find("<nclients>", i)
    return int(text[j + 10:text.find("<", j + 10)]) if j >= 0 else 0


def wait_until(pred, timeout, period=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(period)
    return pred()


# ------------------------------------------------------------------------------------- FLV

class FlvParser:
    """Incremental parser of an HTTP response carrying FLV (identity or chunked body).
    feed(bytes, t) -> list of (t, tag type, timestamp ms, is video keyframe, is codec header)."""

    def __init__(self):
        self.head_done = False
        self.status = None
        self.chunked = False
        self.raw = b""      # bytes not yet de-chunked
        self.body = b""     # FLV bytes not yet parsed
        self.flv_header = False
        self.chunk_left = 0

    def _dechunk(self):
        while self.raw:
            if self.chunk_left > 0:
                take = min(self.chunk_left, len(self.raw))
                self.body += self.raw[:take]
                self.raw = self.raw[take:]
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_left = -2  # the CRLF after the chunk
                continue
            if self.chunk_left == -2:
                if len(self.raw) < 2:
                    return
                self.raw = self.raw[2:]
                self.chunk_left = 0
                continue
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            self.chunk_left = int(self.raw[:i].split(b";")[0], 16)
            self.raw = self.raw[i + 2:]
            if self.chunk_left == 0:
                return

    def feed(self, data, t):
        out = []
        if not self.head_done:
            self.raw += data
            i = self.raw.find(b"\r\n\r\n")
            if i < 0:
                return out
            head, self.raw = self.raw[:i], self.raw[i + 4:]
            lines = head.split(b"\r\n")
            self.status = int(lines[0].split()[1])
            self.chunked = any(l.lower().startswith(b"transfer-encoding:") and b"chunked" in l.lower() for l in lines)
            self.head_done = True
            data = b""
        if self.chunked:
            self.raw += data
            self._dechunk()
        else:
            self.body += self.raw + data
            self.raw = b""
        if not self.flv_header:
            if len(self.body) < 13:
                return out
            self.body = self.body[13:]
            self.flv_header = True
        b = self.body
        i = 0
        while i + 11 <= len(b):
            size = int.from_bytes(b[i + 1:i + 4], "big")
            if i + 11 + size + 4 > len(b):
                break
            ttype = b[i]
            ts = int.from_bytes(b[i + 4:i + 7], "big") | (b[i + 7] << 24)
            p = b[i + 11:i + 11 + size]
            key = ttype == 9 and size > 0 and (p[0] >> 4) == 1
            header = (ttype == 9 and size > 1 and p[1] == 0) or (ttype == 8 and size > 1 and (p[0] >> 4) == 10 and p[1] == 0)
            out.append((t, ttype, ts, key and not header, header))
            i += 11 + size + 4
        self.body = b[i:]
        return out


class FlvPlayer(threading.Thread):
    """An HTTP-FLV player on 127.0.0.1:port reading in a background thread; `tags` is the list
    of (monotonic arrival time, type, timestamp, keyframe, codec header)."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.tags = []
        self.status = None
        self.ended = None       # monotonic time the connection ended (None while open)
        self.error = None
        self.t_connect = None
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        p = FlvParser()
        try:
            self.t_connect = time.monotonic()
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % self.path).encode())
            s.settimeout(0.2)
            while not self._halt.is_set():
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    continue
                now = time.monotonic()
                if not d:
                    self.ended = now
                    break
                tags = p.feed(d, now)
                self.status = p.status
                if tags:
                    with self.lock:
                        self.tags.extend(tags)
            s.close()
        except (OSError, ValueError) as e:
            self.error = str(e)
            self.ended = time.monotonic()

    def snapshot(self):
        with self.lock:
            return list(self.tags)

    def stop(self):
        self._halt.set()
        self.join(3)


def media_tags(tags):
    return [t for t in tags if t[1] in (8, 9) and not t[4]]


def jumps(tags, limit_ms=1000):
    """Timestamp jumps > limit within one track: [(index in tags, type, from ts, to ts)]."""
    prev, out = {}, []
    for i, t in enumerate(tags):
        if t[1] not in (8, 9) or t[4]:
            continue
        if t[1] in prev and abs(t[2] - prev[t[1]]) > limit_ms:
            out.append((i, t[1], prev[t[1]], t[2]))
        prev[t[1]] = t[2]
    return out


# -------------------------------------------------------------------------------- commands

def cmd_firstframe(a):
    local_only(a.url)
    samples = []
    last_end = 0.0
    for i in range(a.n):
        ready = True
        if a.ready == "castmesh":
            def no_relay():
                e = metrics(a.edge_port)
                o = metrics(a.origin_port) if a.origin_port else {}
                return (e.get("castmesh_relays_active", 1) == 0 and
                        o.get('castmesh_connections{protocol="relay"}', 0) == 0)
            ready = wait_until(no_relay, a.ready_timeout_s)
        elif a.ready == "nginx":
            ready = wait_until(lambda: (nginx_nclients(a.origin_stat_port) or 0) <= 1, a.ready_timeout_s)
        left = a.settle_s - (time.monotonic() - last_end)
        if left > 0:
            time.sleep(left)
        try:
            r = subprocess.run([a.loadgen, "--mode", a.mode, "--url", a.url, "-n", "1", "--duration", str(a.duration),
                                "--no-progress", "--label", a.label], capture_output=True, text=True,
                               timeout=a.duration + 30)
            j = json.loads(r.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            j = {"error": str(e)}
        last_end = time.monotonic()
        s = {"i": i, "ready": ready, "connected": j.get("connected", 0), "gaps": j.get("gaps"),
             "startup_ms": (j.get("startup_ms") or {}).get("p50"), "first_byte_ms": (j.get("first_byte_ms") or {}).get("p50"),
             "bytes": j.get("bytes"), "errors": j.get("errors") or j.get("error")}
        samples.append(s)
    ok = [s for s in samples if s["connected"] and s["startup_ms"] is not None and not s["gaps"]]
    stale = [s for s in samples if s["connected"] and s["gaps"]]
    out = {"label": a.label, "mode": a.mode, "url": a.url, "n": a.n, "ready_check": a.ready, "settle_s": a.settle_s,
           "startup_ms": summary([s["startup_ms"] for s in ok]),
           "first_byte_ms": summary([s["first_byte_ms"] for s in ok if s["first_byte_ms"] is not None]),
           "valid": len(ok), "stale": len(stale), "failed": a.n - len(ok) - len(stale),
           "not_ready": sum(1 for s in samples if not s["ready"]), "samples": samples}
    print(json.dumps(out))


def cmd_stale(a):
    runs = []
    # A first play gives the node a Source (and a relay) for the stream; it is not counted.
    wait_until(lambda: metrics(a.port).get("castmesh_relays_active", 1) == 0, 30)
    pl = FlvPlayer(a.port, a.path)
    pl.start()
    time.sleep(a.duration)
    pl.stop()
    for i in range(a.n):
        ready = wait_until(lambda: metrics(a.port).get("castmesh_relays_active", 1) == 0, 30)
        t_released = time.monotonic()
        time.sleep(a.after_release_s)
        pl = FlvPlayer(a.port, a.path)
        pl.start()
        time.sleep(a.duration)
        pl.stop()
        tags = pl.snapshot()
        js = jumps(tags)
        keys = [t for t in tags if t[1] == 9 and t[3]]
        first_key = keys[0] if keys else None
        # The live keyframe: the first one at or after the first jump (or the first one if none).
        start = js[0][0] if js else 0
        live_keys = [t for k, t in enumerate(tags) if k >= start and t[1] == 9 and t[3]]
        t0 = pl.t_connect
        runs.append({
            "i": i, "ready": ready, "since_release_s": round(time.monotonic() - t_released - a.duration, 2),
            "status": pl.status, "tags": len(tags), "stale_prefix": bool(js),
            "first_keyframe_ms": r1((first_key[0] - t0) * 1000) if first_key else None,
            "first_keyframe_ts": first_key[2] if first_key else None,
            "live_keyframe_ms": r1((live_keys[0][0] - t0) * 1000) if live_keys else None,
            "live_keyframe_ts": live_keys[0][2] if live_keys else None,
            "stale_media_tags": (sum(1 for t in tags[:js[0][0]] if t[1] in (8, 9) and not t[4]) if js else 0),
            "jumps": [{"type": "video" if j[1] == 9 else "audio", "from_ts": j[2], "to_ts": j[3]} for j in js],
        })
        time.sleep(0.2)
    stale = [r for r in runs if r["stale_prefix"]]
    print(json.dumps({"label": a.label, "path": a.path, "after_release_s": a.after_release_s, "n": a.n,
                      "stale_runs": len(stale),
                      "jump_ms": summary([r["jumps"][0]["to_ts"] - r["jumps"][0]["from_ts"] for r in stale]),
                      "live_keyframe_ms": summary([r["live_keyframe_ms"] for r in runs if r["live_keyframe_ms"] is not None]),
                      "runs": runs}))


def cmd_hls_lag(a):
    targets = [("origin", a.origin)] + [("edge%d" % i, e) for i, e in enumerate(a.edge)]
    seen = {name: {} for name, _ in targets}     # name -> uri -> (first response time, previous request time)
    initial = {name: None for name, _ in targets}
    stats = {name: {"polls": 0, "errors": 0} for name, _ in targets}
    stop = threading.Event()

    def poll(name, url):
        u = local_only(url)
        h = Http(u.port)
        prev_req = None
        period = a.poll_ms / 1000.0
        while not stop.is_set():
            t_req = time.monotonic()
            st, body = h.get(u.path)
            t_resp = time.monotonic()
            stats[name]["polls"] += 1
            if st == 200:
                uris = [l.strip() for l in body.decode("utf-8", "replace").splitlines() if l.strip() and not l.startswith("#")]
                if initial[name] is None:
                    initial[name] = set(uris)
                for x in uris:
                    if x not in seen[name] and x not in initial[name]:
                        seen[name][x] = (t_resp, prev_req if prev_req is not None else t_req)
                prev_req = t_req
            else:
                stats[name]["errors"] += 1
            d = period - (time.monotonic() - t_req)
            if d > 0:
                time.sleep(d)

    threads = [threading.Thread(target=poll, args=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    time.sleep(a.duration)
    stop.set()
    for t in threads:
        t.join(3)
    o = seen["origin"]
    out = {"label": a.label, "poll_ms": a.poll_ms, "duration_s": a.duration, "polls": stats, "edges": {}}
    for name, url in targets[1:]:
        e = seen[name]
        common = sorted((x for x in e if x in o and x not in (initial["origin"] or set())), key=lambda x: o[x][0])
        delays = [(e[x][0] - o[x][0]) * 1000 for x in common]
        # Bounds: listed on the origin in (o_prev, o_resp], on the edge in (e_prev, e_resp].
        lows = [max(0.0, (e[x][1] - o[x][0]) * 1000) for x in common]
        highs = [(e[x][0] - o[x][1]) * 1000 for x in common]
        out["edges"][name] = {"url": url, "segments": len(common), "delay_ms": summary(delays),
                              "delay_lower_ms": summary(lows), "delay_upper_ms": summary(highs),
                              "delays_ms": [r1(d) for d in delays], "missing_on_edge": sorted(set(o) - set(e))}
    out["origin_url"] = a.origin
    print(json.dumps(out))


def cmd_failover(a):
    path = "/live/%s.flv" % a.stream
    pl = FlvPlayer(a.player_port, path)
    pl.start()
    res = {"label": a.label, "stream": a.stream, "victim": a.victim, "new_owner": a.new_owner, "poll_ms": a.poll_ms}
    # 1. The player receives video through the relay, and every observer sees the victim alive.
    if not wait_until(lambda: sum(1 for t in pl.snapshot() if t[1] == 9 and not t[4]) >= 30, 15):
        res["error"] = "player on %d got no video before the kill (status %s, %s)" % (a.player_port, pl.status, pl.error)
        pl.stop()
        print(json.dumps(res))
        return 1
    obs = {p: Http(p) for p in a.observer_ports}

    def state(p):
        d = obs[p].json("/api/v1/cluster/nodes")
        if d is None:
            return None
        for n in d.get("nodes", []):
            if n.get("node_id") == a.victim:
                return n.get("state")
        return "absent"
    if not wait_until(lambda: all(state(p) == "alive" for p in obs), 10):
        res["error"] = "victim not alive in every observer's view"
    before = media_tags(pl.snapshot())
    last_video_before = [t for t in before if t[1] == 9][-1]
    # 2. Kill the owner.
    t_kill = time.monotonic()
    os.kill(a.kill_pid, signal.SIGKILL)
    ms = lambda t: None if t is None else round((t - t_kill) * 1000, 1)
    first = {p: {"suspect": None, "offline": None} for p in obs}
    pub = None
    t_republish = t_publish = t_owner = None
    new_epoch = None
    http_pub = Http(a.publish_port)
    http_owner = Http(a.player_port, timeout=3)
    end = t_kill + a.timeout_s
    next_t = t_kill
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            for p in obs:
                if first[p]["offline"] is None:
                    s = state(p)
                    t = time.monotonic()
                    if s == "suspect" and first[p]["suspect"] is None:
                        first[p]["suspect"] = t
                    if s in ("offline", "absent"):
                        first[p]["offline"] = t
                        if first[p]["suspect"] is None:
                            first[p]["suspect"] = t
            # 3. The publisher comes back on the new owner's node once that node sees the victim offline.
            if pub is None and first[a.publish_port]["offline"] is not None:
                t_republish = time.monotonic()
                pub = subprocess.Popen(a.publisher, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=open(a.publisher_log, "w") if a.publisher_log else subprocess.DEVNULL)
            if pub is not None and t_publish is None:
                st, body = http_pub.get("/metrics")
                if st == 200 and prom(body.decode()).get("castmesh_streams", 0) >= 1:
                    t_publish = time.monotonic()
            if pub is not None and t_owner is None and now - (t_republish or now) >= 0:
                d = http_owner.json("/api/v1/streams")
                for s in (d or {}).get("streams", []):
                    if s.get("key") == a.stream and s.get("owner") == a.new_owner:
                        t_owner = time.monotonic()
                        new_epoch = s.get("epoch")
            after = [t for t in pl.snapshot() if t[1] == 9 and not t[4] and t_republish is not None and t[0] > t_republish]
            if after and t_owner is not None and t_publish is not None and all(f["offline"] for f in first.values()):
                break
            next_t += a.poll_ms / 1000.0
            d = next_t - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                next_t = time.monotonic()
        time.sleep(0.5)
        tags = pl.snapshot()
    finally:
        pl.stop()
        if pub is not None:
            pub.send_signal(signal.SIGTERM)
            try:
                pub.wait(5)
            except subprocess.TimeoutExpired:
                pub.kill()
                pub.wait()
    video_after = [t for t in tags if t[1] == 9 and not t[4] and t_republish is not None and t[0] > t_republish]
    key_after = [t for t in video_after if t[3]]
    gap_frames = [t for t in tags if t[1] == 9 and not t[4] and t[0] > t_kill and (t_republish is None or t[0] <= t_republish)]
    res.update({
        "kill_to_suspect_ms": {str(p): ms(f["suspect"]) for p, f in first.items()},
        "kill_to_offline_ms": {str(p): ms(f["offline"]) for p, f in first.items()},
        "kill_to_republish_ms": ms(t_republish),
        "republish_to_local_publish_ms": r1((t_publish - t_republish) * 1000) if t_publish and t_republish else None,
        "republish_to_owner_listed_ms": r1((t_owner - t_republish) * 1000) if t_owner and t_republish else None,
        "republish_to_first_video_ms": r1((video_after[0][0] - t_republish) * 1000) if video_after else None,
        "republish_to_first_keyframe_ms": r1((key_after[0][0] - t_republish) * 1000) if key_after else None,
        "first_video_after_is_keyframe": bool(video_after and video_after[0][3]),
        "kill_to_first_video_ms": ms(video_after[0][0]) if video_after else None,
        "video_frames_between_kill_and_republish": len(gap_frames),
        "last_video_ts_before": last_video_before[2],
        "first_video_ts_after": video_after[0][2] if video_after else None,
        "player_connection_ended_ms": ms(pl.ended) if pl.ended else None,
        "player_error": pl.error,
        "new_epoch": new_epoch,
        "publisher_pid": pub.pid if pub else None,
    })
    print(json.dumps(res))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("firstframe")
    f.add_argument("--loadgen", required=True)
    f.add_argument("--mode", choices=["rtmp-play", "flv-play"], required=True)
    f.add_argument("--url", required=True)
    f.add_argument("-n", type=int, default=30)
    f.add_argument("--duration", type=float, default=1.0, help="loadgen --duration per run, s")
    f.add_argument("--ready", choices=["none", "castmesh", "nginx"], default="none")
    f.add_argument("--edge-port", type=int, help="castmesh: HTTP port of the edge node")
    f.add_argument("--origin-port", type=int, help="castmesh: HTTP port of the origin node")
    f.add_argument("--origin-stat-port", type=int, help="nginx: HTTP port with /stat of the origin")
    f.add_argument("--settle-s", type=float, default=0.0, help="at least this long between two runs")
    f.add_argument("--ready-timeout-s", type=float, default=30)
    f.add_argument("--label", default="")

    s = sub.add_parser("stale")
    s.add_argument("--port", type=int, required=True, help="HTTP port of the edge node")
    s.add_argument("--path", required=True, help="/live/APP/STREAM.flv")
    s.add_argument("-n", type=int, default=5, help="plays counted (after one uncounted first play)")
    s.add_argument("--after-release-s", type=float, default=2.0)
    s.add_argument("--duration", type=float, default=1.5)
    s.add_argument("--label", default="")

    h = sub.add_parser("hls-lag")
    h.add_argument("--origin", required=True, help="http://127.0.0.1:PORT/live/APP/STREAM.m3u8 on the owner")
    h.add_argument("--edge", action="append", required=True, help="the same on a non-owner (repeatable)")
    h.add_argument("--duration", type=float, default=40)
    h.add_argument("--poll-ms", type=float, default=10)
    h.add_argument("--label", default="")

    o = sub.add_parser("failover")
    o.add_argument("--kill-pid", type=int, required=True)
    o.add_argument("--victim", required=True, help="node_id of the owner")
    o.add_argument("--observer-ports", type=int, nargs="+", required=True, help="HTTP ports of the survivors")
    o.add_argument("--publish-port", type=int, required=True, help="HTTP port of the node the publisher moves to (an observer)")
    o.add_argument("--new-owner", required=True, help="its node_id")
    o.add_argument("--player-port", type=int, required=True, help="HTTP port of the node with the player")
    o.add_argument("--stream", required=True, help="APP/STREAM")
    o.add_argument("--poll-ms", type=float, default=20)
    o.add_argument("--timeout-s", type=float, default=30)
    o.add_argument("--publisher-log", default="")
    o.add_argument("--label", default="")
    o.add_argument("publisher", nargs=argparse.REMAINDER, help="-- publisher command line")

    a = ap.parse_args()
    if a.cmd == "failover":
        if a.publisher and a.publisher[0] == "--":
            a.publisher = a.publisher[1:]
        if not a.publisher:
            sys.exit("failover: publisher command missing (after --)")
        if a.publish_port not in a.observer_ports:
            a.observer_ports.append(a.publish_port)
    return {"firstframe": cmd_firstframe, "stale": cmd_stale, "hls-lag": cmd_hls_lag, "failover": cmd_failover}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
