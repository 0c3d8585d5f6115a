"""Writes the `late` case: 400 records over seven keys (one non-ASCII, one
absent), event time mostly rising with some records seconds to a minute
behind (within the grace or past it), and a few values without a number;
and, from an independent model of tumbling windows (10 s, 5 s of grace,
late records failing, windows closing in (end, start, key) order once
stream time reaches end + grace), the outputs and failures every
window-sum plugin must give.

    python3 tests/conformance/window-sum/model.py
"""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE, GRACE = 10_000, 5_000

random.seed(19)
keys = ["eu", "us", "ключ-ü", "apac", None, "k5", "k6"]
rows = []
t = 60_000
for i in range(400):
    t += random.choice([0, 50, 120, 300, 700, 1500])
    ts = t
    if random.random() < 0.06:
        ts = t - random.choice([3_000, 8_000, 20_000, 40_000])
    key = random.choice(keys)
    roll = random.random()
    if roll < 0.02:
        value = json.dumps({"amount": "n/a"})
    elif roll < 0.04:
        value = "not json"
    else:
        value = json.dumps({"amount": random.choice([1, 2, 3, 0.5, 10, 7.25, -4])})
    row = {"value": value, "timestamp": ts}
    if key is not None:
        row = {"key": key, **row}
    rows.append(row)

now = None
windows = {}  # (end, start, key bytes) -> [sum, count]
out, failures = [], []
for n, r in enumerate(rows, 1):
    ts = r["timestamp"]
    now = ts if now is None else max(now, ts)
    try:
        amount = json.loads(r["value"])["amount"]
    except (ValueError, TypeError):
        amount = None
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        failures.append(n)
        continue
    start = ts - ts % SIZE
    if start + SIZE + GRACE <= now:
        failures.append(n)
        continue
    w = windows.setdefault((start + SIZE, start, (r.get("key") or "").encode()), [0.0, 0])
    w[0] += float(amount)
    w[1] += 1
    for k in sorted(windows):
        if k[0] + GRACE > now:
            break
        total, count = windows.pop(k)
        line = {"key": k[2].decode()} if k[2] else {}
        line["value"] = json.dumps({"start": k[1], "end": k[0], "sum": total, "count": count}, separators=(",", ":"))
        line["timestamp"] = k[0]
        out.append(line)


def write(name, lines):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        f.write("".join(lines))


write("late.input.jsonl", [json.dumps(r, ensure_ascii=False) + "\n" for r in rows])
write("late.config", ["size=10s\n", "grace=5s\n", "field=amount\n"])
write("late.expected.jsonl", [json.dumps(o, ensure_ascii=False) + "\n" for o in out])
write("late.failures", [f"{n}\n" for n in failures])
print(f"{len(rows)} records, {len(out)} windows, {len(failures)} failures")
