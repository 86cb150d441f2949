#!/usr/bin/env python3
"""Turns the JSON lines written by run_fanout.sh / run_ingest.sh into Markdown tables.

Per (target, N): medians over repetitions of the server's CPU (% of one core), RSS, RSS growth
per client over the idle server, clients that kept up, startup time and per-client bit rate.
A step is "sustained" when the median run had no failed client and >= 99% of clients kept up
(a server near 100% CPU can still sustain a step: when busy, each write carries more data).
"per core" = N / (CPU% / 100) at the largest sustained step: an extrapolation to a full core,
only as good as CPU scaling is linear (it is not: see BENCHMARKS.md).

Usage: summarize.py FILE.jsonl [--json]
"""
import json
import statistics
import sys
from collections import defaultdict


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def load(path):
    header, items, hls = None, [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if "machine" in obj:
                header = obj
            elif obj.get("result"):
                items.append(obj)
            elif "delay_ms" in obj:
                hls.append(obj)
    return header, items, hls


def print_hls(hls):
    by_server = defaultdict(list)
    for h in hls:
        by_server[h["server"]].append(h)
    print("| server | runs | segments | delay p50 ms (pooled) | p90 ms | max ms | per-run p50 ms | lower bound p50/max ms | first playlist s (median) | publisher errors |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|---|")
    for server, runs in sorted(by_server.items()):
        pooled = [d for r in runs for d in r["delays_ms"]]
        per_run = "/".join(fmt(r["delay_ms"]["p50"], 1) for r in runs)
        errs = [r["publisher"]["errors"] for r in runs if r.get("publisher") and r["publisher"].get("errors")]
        p90 = sorted(pooled)[min(len(pooled) - 1, int(0.9 * (len(pooled) - 1) + 0.5))] if pooled else None
        print(f"| {server} | {len(runs)} | {len(pooled)} | {fmt(med(pooled), 1)} | {fmt(p90, 1)} | "
              f"{fmt(max(pooled) if pooled else None, 1)} | {per_run} | "
              f"{fmt(med([r['delay_lower_bound_ms']['p50'] for r in runs]), 1)}/{fmt(max([r['delay_lower_bound_ms']['max'] or 0 for r in runs]), 1)} | "
              f"{fmt(med([r['first_playlist_s'] for r in runs]), 2)} | "
              f"{json.dumps(errs) if errs else '-'} |")


def summarize(items):
    groups = defaultdict(list)
    for it in items:
        groups[(f"{it['server']}:{it['proto']}", it["n"])].append(it)
    rows = []
    for (target, n), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        res = [r["result"] for r in runs]
        cpu = med([r["server_m"]["cpu_pct"] for r in runs])
        rss = med([r["server_m"]["rss_kb_mean"] for r in runs])
        per_client = med([(r["server_m"]["rss_kb_mean"] - r["idle"]["rss_kb_mean"]) / n for r in runs])
        row = {
            "target": target, "n": n, "reps": len(runs),
            "cpu_pct": cpu, "cpu_pct_all": [r["server_m"]["cpu_pct"] for r in runs],
            "idle_cpu_pct": med([r["idle"]["cpu_pct"] for r in runs]),
            "rss_mb": rss / 1024 if rss is not None else None,
            "rss_per_client_kb": per_client,
            "connected": med([x["connected"] for x in res]),
            "failed": med([x["failed"] for x in res]),
            "kept_up": med([x["kept_up"] for x in res]),
            "kept_up_no_gaps": med([x.get("kept_up_no_gaps") for x in res]),
            "startup_p50": med([x["startup_ms"]["p50"] for x in res]),
            "startup_p99": med([x["startup_ms"]["p99"] for x in res]),
            "kbps_median": med([x["kbps"]["median"] for x in res]),
            "kbps_min": med([x["kbps"]["min"] for x in res]),
            "lag_p99": med([x["lag_ms"]["p99"] for x in res]),
            "loadgen_cpu_pct": med([r["loadgen_m"]["cpu_pct"] for r in runs]),
            "errors": [x["errors"] for x in res if x["errors"]],
        }
        row["sustained"] = row["failed"] == 0 and row["kept_up"] is not None and row["kept_up"] >= 0.99 * n
        rows.append(row)
    best = {}
    for row in rows:
        if row["sustained"]:
            b = best.get(row["target"])
            if b is None or row["n"] > b["n"]:
                best[row["target"]] = row
    return rows, best


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    header, items, hls = load(sys.argv[1])
    rows, best = summarize(items)
    if "--json" in sys.argv:
        print(json.dumps({"header": header, "rows": rows, "best": best, "hls": hls}, indent=1))
        return
    if header:
        m = header["machine"]
        print(f"Machine: {m['nproc']} x {m['cpu']}, {m['mem']}, kernel {m['kernel']}, {m['date']} "
              f"(load avg at start {m.get('loadavg', '?')}), nginx {m['nginx']}, castmesh {m['castmesh_commit']}")
        print()
    if hls:
        print_hls(hls)
    if not rows:
        return
    unit = "client"
    print(f"| target | N | server CPU % (runs) | RSS MB | RSS/{unit} KB | failed | kept up | startup p50/p99 ms | "
          f"kbit/s median/min | lag p99 ms | loadgen CPU % |")
    print("|---|---:|---|---:|---:|---:|---:|---|---|---:|---:|")
    for r in rows:
        runs = "/".join(fmt(c) for c in r["cpu_pct_all"])
        print(f"| {r['target']} | {r['n']} | {fmt(r['cpu_pct'])} ({runs}) | {fmt(r['rss_mb'], 1)} | "
              f"{fmt(r['rss_per_client_kb'], 1)} | {fmt(r['failed'])} | {fmt(r['kept_up'])} | "
              f"{fmt(r['startup_p50'])}/{fmt(r['startup_p99'])} | {fmt(r['kbps_median'])}/{fmt(r['kbps_min'])} | "
              f"{fmt(r['lag_p99'])} | {fmt(r['loadgen_cpu_pct'])} |")
    print()
    print(f"| target | largest sustained N | CPU % there | {unit}s per core (N / CPU) | RSS/{unit} KB there |")
    print("|---|---:|---:|---:|---:|")
    for target in sorted({r["target"] for r in rows}):
        b = best.get(target)
        if b is None:
            print(f"| {target} | none | - | - | - |")
            continue
        per_core = b["n"] / (b["cpu_pct"] / 100) if b["cpu_pct"] else None
        print(f"| {target} | {b['n']} | {fmt(b['cpu_pct'])} | {fmt(per_core)} | {fmt(b['rss_per_client_kb'], 1)} |")
    errs = [(r["target"], r["n"], e) for r in rows for e in r["errors"]]
    if errs:
        print()
        print("Errors reported by the load generator:")
        for target, n, e in errs:
            print(f"- {target} N={n}: {json.dumps(e)}")


if __name__ == "__main__":
    main()
