#!/usr/bin/env python3
"""Markdown tables (medians over repetitions) from bench/results/cluster.jsonl.

  bench/cluster/summarize.py bench/results/cluster.jsonl [--run RUN_ID ...]

Without --run every line of the file is used; with it, only lines of those runs.
"""
import argparse
import json
import statistics


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, d=1):
    if x is None:
        return "–"
    if isinstance(x, (int, float)) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{d}f}"


def runs(xs, d=1):
    return " / ".join(fmt(x, d) for x in xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--run", nargs="*", default=[])
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.file) if l.strip()]
    if a.run:
        rows = [r for r in rows if r.get("run_id") in a.run]
    by = lambda test: [r for r in rows if r.get("test") == test and "error" not in r]
    targets = lambda rs: sorted({r["target"] for r in rs}, key=lambda t: (t != "castmesh", t))

    fan = by("fanout")
    if fan:
        print("### Fan-out: one room, members spread over 3 nodes, driver on node A\n")
        print("| server | runs | M | all members last p50 / p99 ms | local last p50 / p99 ms | cross last p50 / p99 ms | cross median receipt p50 ms "
              "| cross first receipt p50 ms | node B / C last p99 ms | msgs/s pipelined | node CPU % A/B/C | Redis CPU % | PostgreSQL CPU % "
              "| client CPU % (rounds) | failures |")
        print("|---|---:|---:|---|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|")
        for t in targets(fan):
            g = [r for r in fan if r["target"] == t]
            loc = [r.get("local", {}) for r in g]
            cr = [r.get("cross", {}) for r in g]
            gb = [r["groups"][1] for r in g if r.get("groups")]
            gc = [r["groups"][2] for r in g if r.get("groups")]
            fails = sum(r.get("connect_failures", 0) + r.get("disconnects", 0) + r.get("rounds_incomplete", 0) for r in g)
            cpu = [med([r["node_cpu_pct"][i] for r in g if r.get("node_cpu_pct")]) for i in range(3)]
            print(f"| {t} | {len(g)} | {g[0].get('members', 0):,} "
                  f"| {fmt(med([r.get('last_ms_p50') for r in g]))} / {fmt(med([r.get('last_ms_p99') for r in g]))} "
                  f"| {fmt(med([x.get('last_ms_p50') for x in loc]))} / {fmt(med([x.get('last_ms_p99') for x in loc]))} "
                  f"| **{fmt(med([x.get('last_ms_p50') for x in cr]))} / {fmt(med([x.get('last_ms_p99') for x in cr]))}** "
                  f"| {fmt(med([x.get('median_receipt_ms_p50') for x in cr]))} "
                  f"| {fmt(med([x.get('first_ms_p50') for x in cr]))} "
                  f"| {fmt(med([x.get('last_ms_p99') for x in gb]))} / {fmt(med([x.get('last_ms_p99') for x in gc]))} "
                  f"| {fmt(med([r.get('tp_msgs_per_sec') for r in g]))} "
                  f"| {' / '.join(fmt(c, 0) for c in cpu)} | {fmt(med([r.get('redis_cpu_pct') for r in g]))} "
                  f"| {fmt(med([r.get('postgres_cpu_pct') for r in g]) if t == 'castmesh' else None)} "
                  f"| {fmt(med([r.get('latency_phase_client_cpu_pct') for r in g]))} | {fails} |")
        print()
        print("Per run, cross-node last-receipt p99 ms: " + "; ".join(
            f"{t}: {runs([r.get('cross', {}).get('last_ms_p99') for r in fan if r['target'] == t])}" for t in targets(fan)))
        print()

    ev = by("events")
    if ev:
        print("### Events per second through Redis (3 members, one per node, pipelined seeks)\n")
        print("| server | runs | events/s delivered to all 3 nodes (median) | runs | Redis PUBLISH per event | "
              "Redis CPU % | PostgreSQL CPU % | node CPU % A/B/C |")
        print("|---|---:|---:|---|---:|---:|---:|---|")
        for t in targets(ev):
            g = [r for r in ev if r["target"] == t]
            eps = [r.get("tp_events_per_sec") for r in g]
            ppe = [r["redis_calls"]["publish"] / r["tp_seeks"] for r in g if r.get("redis_calls") and r.get("tp_seeks")]
            cpu = [med([r["node_cpu_pct"][i] for r in g if r.get("node_cpu_pct")]) for i in range(3)]
            print(f"| {t} | {len(g)} | **{fmt(med(eps))}** | {runs(eps)} | {fmt(med(ppe), 2)} "
                  f"| {fmt(med([r.get('redis_cpu_pct') for r in g]))} "
                  f"| {fmt(med([r.get('postgres_cpu_pct') for r in g]) if t == 'castmesh' else None)} "
                  f"| {' / '.join(fmt(c, 0) for c in cpu)} |")
        print()

    bus = by("bus")
    if bus:
        print("### Bus level: one node publishes as fast as it can, another receives "
              "(castmesh RedisEventBus vs Socket.IO Redis adapter)\n")
        print("| server | runs | events × bytes | delivered /s (median) | runs | Redis cmds per event "
              "| Redis CPU % | all delivered |")
        print("|---|---:|---|---:|---|---|---:|---|")
        for t in targets(bus):
            g = [r for r in bus if r["target"] == t]
            d = [r.get("delivered_per_sec") for r in g]
            rc = g[0].get("redis_calls", {})
            ev = g[0].get("events") or 1
            cmds = ", ".join(f"{k} {v / ev:.2f}" for k, v in rc.items() if v)
            print(f"| {t} | {len(g)} | {g[0].get('events', 0):,} × {g[0].get('payload_bytes')} "
                  f"| **{fmt(med(d))}** | {runs(d)} | {cmds} "
                  f"| {fmt(med([r.get('redis_cpu_pct') for r in g]))} | {all(r.get('all_delivered') for r in g)} |")
        print()

    ceil = by("ceiling")
    if ceil:
        print("### Ceiling: redis-benchmark PUBLISH (one subscriber)\n")
        print("| connections | pipeline | payload B | runs | PUBLISH/s (median) | runs |")
        print("|---:|---:|---:|---:|---:|---|")
        for key in sorted({(r["clients"], r["pipeline"]) for r in ceil}):
            g = [r for r in ceil if (r["clients"], r["pipeline"]) == key]
            v = [r["publish_per_sec"] for r in g]
            print(f"| {key[0]} | {key[1]} | {g[0]['payload_bytes']} | {len(g)} | **{fmt(med(v))}** | {runs(v)} |")
        print()

    for test, title in (("detect", "Dead-node detection (SIGKILL node C; A and B polled every 20 ms; slower observer)"),
                        ("hang", "Hung node (SIGSTOP node B, its sockets stay open; A polled every 20 ms)")):
        det = by(test)
        if not det:
            continue
        print(f"### {title}\n")
        print("| server | runs | heartbeat × offline threshold | bound (interval × offline + 1 s) | to suspect ms (median) "
              "| runs | to offline ms (median) | runs | within bound |")
        print("|---|---:|---|---:|---:|---|---:|---|---|")
        for t in targets(det):
            g = [r for r in det if r["target"] == t]
            s_ = [r.get("suspect_ms_max") for r in g]
            o = [r.get("offline_ms_max") for r in g]
            bound = g[0].get("bound_ms")
            ok = all(x is not None and x <= bound for x in o)
            never = all(x is None for x in o)
            off = f"not detected in {g[0].get('timeout_s', 10):.0f} s" if never else f"**{fmt(med(o), 0)}**"
            mech = (f"{g[0].get('heartbeat_interval_s')} s × {g[0].get('offline_threshold')}" if t == "castmesh"
                    else "none (adapter: PUBSUB NUMSUB)")
            print(f"| {t} | {len(g)} | {mech} | {fmt(bound)} "
                  f"| {fmt(med(s_), 0)} | {runs(s_, 0)} | {off} | {runs(o, 0)} | {'yes' if ok else 'no'} |")
        print()


if __name__ == "__main__":
    main()
