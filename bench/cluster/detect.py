#!/usr/bin/env python3
"""Time for the surviving nodes to notice a dead one (bench/cluster/run_cluster.sh).

castmesh: waits until every observer lists the victim node as "alive" (and `--nodes` nodes
alive in all), sends the signal to the victim's PID, then polls
GET /api/v1/cluster/nodes on every observer every --interval-ms over keep-alive connections and
records, per observer, the first response in which the victim is "suspect" and the first in
which it is "offline" (or no longer listed). Times are from just before kill() to the receipt of
that response (so they include up to one poll interval plus the request time).

peer (bench/peer/cluster_server.js): the same with GET /nodes, whose "servers" count comes from
the Socket.IO Redis adapter (PUBSUB NUMSUB of its request channel); "offline" = the count
dropped below --nodes. The adapter has no suspect state.

The victim is a PID the calling script started. Prints one JSON line. Only 127.0.0.1.
"""
import argparse
import http.client
import json
import os
import signal
import sys
import time


class Poller:
    """One keep-alive HTTP connection to 127.0.0.1:port."""

    def __init__(self, port, path):
        self.port, self.path, self.conn = port, path, None

    def get(self):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                self.conn.request("GET", self.path)
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    return None
                return json.loads(body)
            except (OSError, http.client.HTTPException, ValueError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return None


def victim_state(doc, victim):
    """castmesh: the victim's state in one /api/v1/cluster/nodes reply ("absent" if not listed)."""
    for n in doc.get("nodes", []):
        if n.get("node_id") == victim:
            return n.get("state")
    return "absent"


def alive_count(doc):
    return sum(1 for n in doc.get("nodes", []) if n.get("state") == "alive")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["castmesh", "peer"])
    ap.add_argument("--kill-pid", type=int, required=True)
    ap.add_argument("--signal", default="KILL", choices=["KILL", "STOP"])
    ap.add_argument("--victim", default="", help="castmesh: node_id of the victim")
    ap.add_argument("--observers", type=int, nargs="+", required=True, help="HTTP ports of the survivors")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--interval-ms", type=float, default=20)
    ap.add_argument("--ready-timeout-s", type=float, default=20)
    ap.add_argument("--timeout-s", type=float, default=20)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    path = "/api/v1/cluster/nodes" if a.kind == "castmesh" else "/nodes"
    pollers = {p: Poller(p, path) for p in a.observers}

    # 1. Every observer sees the whole cluster up.
    deadline = time.monotonic() + a.ready_timeout_s
    while True:
        ok = True
        for p in pollers.values():
            d = p.get()
            if d is None:
                ok = False
            elif a.kind == "castmesh":
                ok = ok and victim_state(d, a.victim) == "alive" and alive_count(d) >= a.nodes
            else:
                ok = ok and d.get("servers", 0) >= a.nodes
        if ok:
            break
        if time.monotonic() > deadline:
            print(json.dumps({"label": a.label, "kind": a.kind, "error": "cluster not ready"}))
            return 1
        time.sleep(0.1)

    # 2. Kill, then poll.
    sig = signal.SIGKILL if a.signal == "KILL" else signal.SIGSTOP
    t0 = time.monotonic()
    os.kill(a.kill_pid, sig)
    res = {p: {"suspect_ms": None, "offline_ms": None} for p in pollers}
    polls = 0
    last_seen_ago = {}
    end = t0 + a.timeout_s
    next_t = t0
    while time.monotonic() < end and any(r["offline_ms"] is None for r in res.values()):
        for port, p in pollers.items():
            r = res[port]
            if r["offline_ms"] is not None:
                continue
            d = p.get()
            now_ms = (time.monotonic() - t0) * 1000
            polls += 1
            if d is None:
                continue
            if a.kind == "castmesh":
                st = victim_state(d, a.victim)
                for n in d.get("nodes", []):
                    if n.get("node_id") == a.victim:
                        last_seen_ago[port] = n.get("last_seen_ms_ago")
                if st == "suspect" and r["suspect_ms"] is None:
                    r["suspect_ms"] = round(now_ms, 1)
                if st in ("offline", "absent"):
                    if r["suspect_ms"] is None:
                        r["suspect_ms"] = round(now_ms, 1)
                        r["suspect_skipped"] = True
                    r["offline_ms"] = round(now_ms, 1)
                    r["offline_as"] = st
                    r["last_seen_ms_ago"] = last_seen_ago.get(port)
            else:
                if d.get("servers", a.nodes) < a.nodes:
                    r["offline_ms"] = round(now_ms, 1)
        next_t += a.interval_ms / 1000
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.monotonic()
    out = {
        "label": a.label, "kind": a.kind, "signal": a.signal, "interval_ms": a.interval_ms, "polls": polls,
        "timeout_s": a.timeout_s,
        "observers": {str(k): v for k, v in res.items()},
    }
    offs = [r["offline_ms"] for r in res.values()]
    sus = [r["suspect_ms"] for r in res.values()]
    out["offline_ms_max"] = None if None in offs else max(offs)
    out["suspect_ms_max"] = None if None in sus else max(sus)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
