"""Turns the contenders bench's JSON into the table and plots in docs/performance.md.

    python tests/bench/report.py RESULTS.json OUT_DIR
    python tests/bench/report.py --state STATE.json OUT_DIR

Writes OUT_DIR/results.md (the table, the ratios, the scaling) and
OUT_DIR/throughput.png, latency.png, rss.png; with --state, the stateful
bench's table (host/benches/stateful.rs) as OUT_DIR/state.md.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WASMPIPE = "#2a7ab0"
STREAMS = "#d9822b"
CLIENT = "#7a7a7a"


def colour(name):
    if name.startswith("wasmpipe"):
        return WASMPIPE
    if name.startswith("Kafka Streams"):
        return STREAMS
    return CLIENT


def label(r):
    short = "ALO" if r["delivery"] == "at-least-once" else "EOS"
    return f'{r["name"]} ({short})'


def spread(runs):
    return (min(runs), max(runs)) if runs else (float("nan"), float("nan"))


def best(results):
    """Per contender and delivery, the setting compared: the process count
    (and for Kafka Streams the heap) with the highest median throughput;
    its RSS is the one at the smallest heap, at any process count, whose
    median throughput is within 5% of that best."""
    groups = {}
    for r in results:
        groups.setdefault((r["name"], r["delivery"]), []).append(r)
    out = []
    for (name, delivery), rs in groups.items():
        top = max(rs, key=lambda r: r["throughput"])
        chosen = dict(top)
        def mib(h):
            return float(h[:-1]) * (1024 if h.endswith("g") else 1)
        good = [r for r in rs if r.get("heap") and r["throughput"] >= 0.95 * top["throughput"]]
        if good:
            small = min(good, key=lambda r: (mib(r["heap"]), r["peak_rss_mib"]))
            chosen["rss_heap"] = small["heap"]
            chosen["rss_procs"] = small["procs"]
            chosen["peak_rss_mib"] = small["peak_rss_mib"]
            chosen["rss_mib_runs"] = small.get("rss_mib_runs", [])
        # Latency is measured with three processes.
        three = [r for r in rs if r["procs"] == 3 and r.get("heap") == top.get("heap") and "p99_ms" in r]
        for k in ("rate", "p50_ms", "p99_ms", "p999_ms", "quantiles_ms"):
            chosen.pop(k, None)
            if three and k in three[0]:
                chosen[k] = three[0][k]
        out.append(chosen)
    return out


def find(results, name, delivery):
    for r in results:
        if r["name"] == name and r["delivery"] == delivery:
            return r
    return None


def ratio(a, b):
    return a / b if a and b else float("nan")


def main(path, out):
    data = json.load(open(path))
    results = data["results"]
    machine = data["machine"]
    os.makedirs(out, exist_ok=True)
    full = best(results)
    repeats = max(len(r.get("throughput_runs", [1])) for r in results)
    latency = any("rate" in r for r in full)
    counts = sorted({r["procs"] for r in results})
    procs = (
        f'the best of {", ".join(map(str, counts[:-1]))} and {counts[-1]} processes'
        if len(counts) > 1
        else f'{counts[0]} process{"es" if counts[0] > 1 else ""}'
    )

    lines = [
        f'Machine: {machine["cpus"]} CPUs ({machine["cpu"]}), {machine["memory_gib"]:.0f} GiB; '
        f'broker, contenders and reader on the same cores. {full[0]["records"]:,} records '
        "(100 B and 1 KiB JSON values, three headers), 3 partitions, producer compression "
        f'{full[0].get("compression", "lz4")}. Each row: {procs} '
        "(Kafka Streams: stream threads in one JVM, and the best heap), the median of "
        f"{repeats} drains with their range; Kafka Streams' RSS at the smallest heap, at any "
        "thread count, within 5% of its best throughput (G1)."
        + (
            f' Latency with three processes at {next(r["rate"] for r in full if "rate" in r):,} records/s.'
            if any("rate" in r for r in full)
            else " Latency not measured in this run."
        ),
        "",
        "| contender | delivery | procs | records/s (median, range) | CPU µs per record | peak RSS |"
        + (" p50 | p99 | p99.9 |" if latency else ""),
        "|---|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if latency else ""),
    ]
    for r in full:
        lo, hi = spread(r.get("throughput_runs", []))
        heap = ""
        if r.get("rss_heap"):
            at = f', {r["rss_procs"]} threads' if r["rss_procs"] != r["procs"] else ""
            heap = f' (-Xmx{r["rss_heap"]}{at})'
        lines.append(
            f'| {r["name"]} | {r["delivery"]} | {r["procs"]} | {r["throughput"]:,.0f} ({lo:,.0f}–{hi:,.0f}) | '
            f'{r["cpu_us_per_record"]:.1f} | {r["peak_rss_mib"]:.0f} MiB{heap} |'
            + (
                f' {r.get("p50_ms", "–")} ms | {r.get("p99_ms", "–")} ms | {r.get("p999_ms", "–")} ms |'
                if latency
                else ""
            )
        )
    lines += ["", "| comparison | delivery | measured |", "|---|---|---:|"]
    for delivery in ("at-least-once", "exactly-once"):
        w = find(full, "wasmpipe redact", delivery)
        k = find(full, "Kafka Streams redact", delivery)
        if w and k:
            lines.append(f'| redact throughput vs Kafka Streams | {delivery} | {ratio(w["throughput"], k["throughput"]):.2f}× |')
            lines.append(f'| redact peak RSS vs Kafka Streams | {delivery} | {ratio(w["peak_rss_mib"], k["peak_rss_mib"]):.2f}× |')
        w = find(full, "wasmpipe identity", delivery)
        c = find(full, "rdkafka loop", delivery)
        if w and c:
            lines.append(f'| identity throughput vs the rdkafka loop | {delivery} | {ratio(w["throughput"], c["throughput"]):.0%} |')
            lines.append(
                f'| identity records per CPU second vs the rdkafka loop | {delivery} | '
                f'{ratio(c["cpu_us_per_record"], w["cpu_us_per_record"]):.0%} |'
            )
    scaling = sorted(
        (r for r in results if r["name"] == "wasmpipe redact" and r["delivery"] == "at-least-once"),
        key=lambda r: r["procs"],
    )
    if len(scaling) > 1:
        lines += ["", "| wasmpipe redact, at-least-once | records/s | CPU µs per record | records/s per CPU second |", "|---|---:|---:|---:|"]
        for r in scaling:
            lines.append(
                f'| {r["procs"]} process{"es" if r["procs"] > 1 else ""} | {r["throughput"]:,.0f} | '
                f'{r["cpu_us_per_record"]:.1f} | {1e6 / r["cpu_us_per_record"]:,.0f} |'
            )
    open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")

    names = [label(r) for r in full]
    colours = [colour(r["name"]) for r in full]

    def bars(field, runs, xlabel, title, name):
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(full) + 1.2))
        values = [r[field] for r in full]
        lo = [v - spread(r.get(runs, [v]))[0] for v, r in zip(values, full)]
        hi = [spread(r.get(runs, [v]))[1] - v for v, r in zip(values, full)]
        ax.barh(names, values, color=colours, xerr=[lo, hi], capsize=3)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=110)

    bars("throughput", "throughput_runs", "records/s draining a backlog (median and range)", "Throughput", "throughput.png")
    bars("peak_rss_mib", "rss_mib_runs", "peak RSS, MiB (sum over the contender's processes)", "Memory", "rss.png")

    if not any("quantiles_ms" in r for r in full):
        return
    fig, ax = plt.subplots(figsize=(9, 5))
    for r in full:
        if "quantiles_ms" not in r:
            continue
        q = r["quantiles_ms"]
        ax.plot(q, [i / len(q) for i in range(len(q))], label=label(r), color=colour(r["name"]),
                linestyle="-" if r["delivery"] == "at-least-once" else "--")
    ax.set_xscale("log")
    ax.set_xlabel(f'end-to-end latency, ms (log), at {full[0].get("rate", 0):,} records/s')
    ax.set_ylabel("fraction of records")
    ax.set_title("Latency distribution")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency.png"), dpi=110)


def state(path, out):
    data = json.load(open(path))
    results = data["results"]
    os.makedirs(out, exist_ok=True)
    first = results[0] if results else None
    lines = []
    if first:
        repeats = max(len(r["throughput_runs"]) for r in results)
        lines += [
            f'{first["records"]:,} records of {first["keys"]:,} keys (about 100 B JSON values), '
            "3 partitions, exactly-once, one process (Kafka Streams: one stream thread), "
            f"commits every 100 ms, the median of {repeats} drains (min–max).",
            "",
            "| contender | records/s | CPU µs per record | records per CPU second | peak RSS MiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in results:
            lines.append(
                f'| {r["name"]} | {r["throughput"]:,.0f} ({spread(r["throughput_runs"])[0]:,.0f}–{spread(r["throughput_runs"])[1]:,.0f}) | '
                f'{r["cpu_us_per_record"]:.1f} | {r["records_per_cpu_second"]:,.0f} | '
                f'{r["peak_rss_mib"]:.0f} |'
            )
        for transform in ("count", "window-sum"):
            ours = next((r for r in results if r["name"] == f"wasmpipe {transform}"), None)
            theirs = next((r for r in results if r["name"] == f"Kafka Streams {transform}"), None)
            if ours and theirs:
                lines.append(
                    f'\n{transform}: wasmpipe does {ours["records_per_cpu_second"] / theirs["records_per_cpu_second"]:.2f}× '
                    f'Kafka Streams\' records per CPU second and {ours["throughput"] / theirs["throughput"]:.2f}× its '
                    f'throughput, at {ours["peak_rss_mib"] / theirs["peak_rss_mib"]:.2f}× its peak RSS.'
                )
    restore = data.get("restore")
    if restore:
        lines.append(
            f'\nRestore after a SIGKILL, on an empty state directory: {restore["keys"]:,} keys in '
            f'{restore["restore_seconds"]:.2f} s (the three partitions\' restores; '
            f'{restore["start_to_restored_seconds"]:.2f} s from the process\'s start, joining the group '
            f'included), peak RSS {restore["peak_rss_mib"]:.0f} MiB.'
        )
    open(os.path.join(out, "state.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "--state":
        state(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
