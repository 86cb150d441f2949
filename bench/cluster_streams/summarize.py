#!/usr/bin/env python3
"""Markdown tables from the JSON lines of bench/cluster_streams/run_edge.sh.

First frame: percentiles over the pooled valid samples of every repetition (nearest rank), plus
each repetition's p50. Everything else: the median over repetitions, with each repetition's
value in brackets.

Usage: summarize.py FILE.jsonl [--run RUN_ID]   (default: the last run in the file)
"""
import argparse
import json
import statistics
from collections import defaultdict


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def f(v, d=0):
    return "-" if v is None else f"{v:,.{d}f}"


def runs(values, d=0):
    return " / ".join(f(v, d) for v in values)


def load(path, run):
    rows = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    ids = [r.get("run_id") for r in rows if r.get("run_id")]
    run = run or (ids[-1] if ids else None)
    return run, [r for r in rows if r.get("run_id") == run]


def firstframe(rows):
    groups = defaultdict(list)
    for r in rows:
        if r.get("test") == "firstframe":
            groups[(r["target"], r["case"], r["proto"])].append(r)
    if not groups:
        return
    order = {"local": 0, "cold": 1, "warm": 2}
    print("### First frame: connect -> first video keyframe (castmesh-loadgen `-n 1` runs)\n")
    print("| target | case | protocol | samples (valid / stale / failed) | p50 ms | p90 ms | p99 ms | max ms | p50 per run ms | first byte p50 ms |")
    print("|---|---|---|---|---:|---:|---:|---:|---|---:|")
    for (target, case, proto), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][2])):
        vals = [s["startup_ms"] for r in rs for s in r.get("samples", [])
                if s.get("connected") and s.get("startup_ms") is not None and not s.get("gaps")]
        fb = [s["first_byte_ms"] for r in rs for s in r.get("samples", [])
              if s.get("connected") and s.get("first_byte_ms") is not None and not s.get("gaps")]
        valid = sum(r.get("valid", 0) for r in rs)
        stale = sum(r.get("stale", 0) for r in rs)
        failed = sum(r.get("failed", 0) for r in rs)
        print(f"| {target} | {case} | {proto} | {valid} / {stale} / {failed} | {f(pct(vals, .5), 1)} | {f(pct(vals, .9), 1)} | "
              f"{f(pct(vals, .99), 1)} | {f(max(vals) if vals else None, 1)} | "
              f"{runs([r['startup_ms']['p50'] for r in rs], 1)} | {f(pct(fb, .5), 1)} |")
    print()


def stale(rows):
    rs = [r for r in rows if r.get("test") == "stale"]
    if not rs:
        return
    print("### Stale frames: HTTP-FLV plays on an edge shortly after its previous relay was released\n")
    print("| rep | plays | began with the previous relay's frames | stale media tags (median) | timestamp jump ms (median) | first keyframe ms (median) | live keyframe ms (median) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rs:
        st = [x for x in r.get("runs", []) if x["stale_prefix"]]
        print(f"| {r['rep']} | {r.get('n')} | {r.get('stale_runs')} | {f(med([x['stale_media_tags'] for x in st]))} | "
              f"{f(med([x['jumps'][0]['to_ts'] - x['jumps'][0]['from_ts'] for x in st]))} | "
              f"{f(med([x['first_keyframe_ms'] for x in st]), 1)} | {f(med([x['live_keyframe_ms'] for x in st]), 1)} |")
    print()


def relaycost(rows):
    groups = defaultdict(list)
    for r in rows:
        if r.get("test") == "relaycost":
            groups[(r["target"], r["where"], r["players"])].append(r)
    if not groups:
        return
    print("### Relay cost: the origin with players on the edge, and on itself\n")
    print("| target | players | origin CPU % (runs) | origin egress kbit/s (runs) | of it to relays kbit/s | edge CPU % | origin relay connections | edge relays | players kept up |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for (target, where, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "edge", kv[0][2])):
        cpu = [r["origin_m"]["cpu_pct"] for r in rs]
        out = [r["origin_out_bytes_per_s"].get("all", 0) * 8 / 1000 for r in rs]
        rel = [r["origin_out_bytes_per_s"].get("relay") for r in rs]
        rel = [None if v is None else v * 8 / 1000 for v in rel]
        ecpu = [r["edge_m"]["cpu_pct"] for r in rs]
        conns = [r["counters_end"].get("origin_relay_connections") for r in rs]
        relays = [r["counters_end"].get("edge_relays_active") for r in rs]
        kept = [(r.get("loadgen") or {}).get("kept_up") for r in rs] if n else []
        print(f"| {target} | {n} on the {where} | {f(med(cpu), 1)} ({runs(cpu, 1)}) | {f(med(out))} ({runs(out)}) | {f(med(rel))} | "
              f"{f(med(ecpu), 1)} | {f(med(conns))} | {f(med(relays))} | {f(med(kept)) if kept else '-'} |")
    print()


def hls(rows):
    rs = [r for r in rows if r.get("test") == "hls"]
    if rs:
        print(f"### HLS through the proxy: segment first listed on the edge − first listed on the origin (polls every {rs[0].get('poll_ms')} ms)\n")
        print("| edge | segments | p50 ms | p90 ms | max ms | p50 per run ms | bounds p50 ms (lower / upper) |")
        print("|---|---:|---:|---:|---:|---|---|")
        for name, label in (("edge0", "b"), ("edge1", "c")):
            ds = [d for r in rs for d in r["edges"].get(name, {}).get("delays_ms", [])]
            lo = [r["edges"][name]["delay_lower_ms"]["p50"] for r in rs if name in r["edges"]]
            hi = [r["edges"][name]["delay_upper_ms"]["p50"] for r in rs if name in r["edges"]]
            print(f"| {label} | {len(ds)} | {f(pct(ds, .5), 1)} | {f(pct(ds, .9), 1)} | {f(max(ds) if ds else None, 1)} | "
                  f"{runs([r['edges'][name]['delay_ms']['p50'] for r in rs if name in r['edges']], 1)} | {f(med(lo), 1)} / {f(med(hi), 1)} |")
        print()
    ws = defaultdict(list)
    for r in rows:
        if r.get("test") == "wrk":
            ws[(r["target"], r["what"])].append(r)
    if ws:
        print("### Requests per second for one cached object (`wrk -t1 -c%d -d%ds`, server on one core)\n" %
              (next(iter(ws.values()))[0]["connections"], next(iter(ws.values()))[0]["seconds"]))
        print("| target | object | requests/s (runs) | non-2xx | proxy hits / misses (median) |")
        print("|---|---|---|---:|---|")
        for (target, what), rs2 in sorted(ws.items()):
            rps = [r["requests_per_s"] for r in rs2]
            hm = f"{f(med([r['proxy_hits'] for r in rs2]))} / {f(med([r['proxy_misses'] for r in rs2]))}" if "edge" in what else "-"
            print(f"| {target} | {what} | {f(med(rps))} ({runs(rps)}) | {f(sum(r['non_2xx'] for r in rs2))} | {hm} |")
        print()


def failover(rows):
    rs = [r for r in rows if r.get("test") == "failover"]
    if not rs:
        return
    print("### Failover timeline (owner a SIGKILLed; publisher restarted towards b when b sees a offline; HTTP-FLV player on c)\n")
    print("| rep | kill -> suspect ms (b / c) | kill -> offline ms (b / c) | republish -> b publishing ms | republish -> c lists b ms | republish -> first video on c ms | b publishing -> video on c ms | kill -> video on c ms | player stayed connected | media ts before -> after |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in rs:
        if "error" in r:
            print(f"| {r['rep']} | error: {r['error']} |")
            continue
        sus, off = list(r["kill_to_suspect_ms"].values()), list(r["kill_to_offline_ms"].values())
        pub, vid = r.get("republish_to_local_publish_ms"), r.get("republish_to_first_video_ms")
        print(f"| {r['rep']} | {runs(sus)} | {runs(off)} | {f(pub)} | {f(r.get('republish_to_owner_listed_ms'))} | **{f(vid)}** | "
              f"{f(vid - pub if vid is not None and pub is not None else None)} | {f(r.get('kill_to_first_video_ms'))} | "
              f"{'yes' if r.get('player_connection_ended_ms') is None else 'no'} | {r.get('last_video_ts_before')} -> {r.get('first_video_ts_after')} |")
    ok = [r for r in rs if "error" not in r]
    v = [r.get("republish_to_first_video_ms") for r in ok]
    print(f"\nMedian republish -> first video on c: {f(med(v))} ms (runs {runs(v)}).\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--run", default=None)
    a = ap.parse_args()
    run, rows = load(a.file, a.run)
    print(f"Run {run}\n")
    firstframe(rows)
    stale(rows)
    relaycost(rows)
    hls(rows)
    failover(rows)


if __name__ == "__main__":
    main()
