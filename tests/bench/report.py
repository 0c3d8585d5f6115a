"""Turns the contenders bench's JSON into the table and plots in docs/performance.md.

    python tests/bench/report.py RESULTS.json OUT_DIR

Writes OUT_DIR/results.md (the table, the ratios, the scaling) and
OUT_DIR/throughput.png, latency.png, rss.png.
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


def find(results, name, delivery):
    for r in results:
        if r["name"] == name and r["delivery"] == delivery and r["procs"] == 3:
            return r
    return None


def ratio(a, b):
    return a / b if a and b else float("nan")


def main(path, out):
    data = json.load(open(path))
    results = data["results"]
    machine = data["machine"]
    os.makedirs(out, exist_ok=True)
    full = [r for r in results if r["procs"] == 3]

    lines = [
        f'Machine: {machine["cpus"]} CPUs ({machine["cpu"]}), {machine["memory_gib"]:.0f} GiB; '
        f'broker, contenders and reader on the same cores. {full[0]["records"]:,} records '
        "(100 B and 1 KiB JSON values, three headers), 3 partitions, 3 processes "
        "(Kafka Streams: one JVM, 3 stream threads). "
        f'Latency at {full[0].get("rate", 0):,} records/s.',
        "",
        "| contender | delivery | records/s | CPU µs per record | peak RSS | p50 | p99 | p99.9 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in full:
        lines.append(
            f'| {r["name"]} | {r["delivery"]} | {r["throughput"]:,.0f} | {r["cpu_us_per_record"]:.1f} | '
            f'{r["peak_rss_mib"]:.0f} MiB | {r.get("p50_ms", "–")} ms | {r.get("p99_ms", "–")} ms | '
            f'{r.get("p999_ms", "–")} ms |'
        )
    lines += ["", "| goal | delivery | measured | goal | met |", "|---|---|---:|---:|---|"]
    for delivery in ("at-least-once", "exactly-once"):
        w = find(results, "wasmpipe redact", delivery)
        k = find(results, "Kafka Streams redact", delivery)
        if w and k:
            t = ratio(w["throughput"], k["throughput"])
            m = ratio(w["peak_rss_mib"], k["peak_rss_mib"])
            lines.append(f"| redact throughput vs Kafka Streams | {delivery} | {t:.2f}× | ≥ 2× | {'yes' if t >= 2 else 'no'} |")
            lines.append(f"| redact peak RSS vs Kafka Streams | {delivery} | {m:.2f}× | ≤ 0.25× | {'yes' if m <= 0.25 else 'no'} |")
            if "p99_ms" in w and "p99_ms" in k:
                lines.append(
                    f'| redact p99 latency vs Kafka Streams | {delivery} | {w["p99_ms"]} vs {k["p99_ms"]} ms | lower | '
                    f'{"yes" if w["p99_ms"] < k["p99_ms"] else "no"} |'
                )
    w = find(results, "wasmpipe identity", "at-least-once")
    c = find(results, "rdkafka loop", "at-least-once")
    if w and c:
        t = ratio(w["throughput"], c["throughput"])
        cpu = ratio(c["cpu_us_per_record"], w["cpu_us_per_record"])
        lines.append(f"| identity throughput vs the rdkafka loop | at-least-once | {t:.0%} | ≥ 90% | {'yes' if t >= 0.9 else 'no'} |")
        lines.append(f"| identity records per CPU second vs the rdkafka loop | at-least-once | {cpu:.0%} | (context) | |")
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

    def bars(field, xlabel, title, name):
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(full) + 1.2))
        ax.barh(names, [r[field] for r in full], color=colours)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=110)

    bars("throughput", "records/s, draining a backlog (3 partitions, 3 processes)", "Throughput", "throughput.png")
    bars("peak_rss_mib", "peak RSS, MiB (sum over the contender's processes)", "Memory", "rss.png")

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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
