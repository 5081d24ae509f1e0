#!/usr/bin/env python3
"""Draws p50/p99 latency per load from scripts/bench's results.tsv into a PNG."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
labels = [f"{mode} c{conns}" for mode, conns, *_ in rows]
p50 = [float(row[3]) for row in rows]
p99 = [float(row[4]) for row in rows]
figure, axis = plt.subplots(figsize=(7, 3.5))
positions = range(len(rows))
axis.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50")
axis.bar([p + 0.2 for p in positions], p99, width=0.4, label="p99")
axis.set_xticks(list(positions), labels)
axis.set_ylabel("latency (ms)")
axis.set_title("Twofold POST /api/v1/validate latency under load")
axis.legend()
figure.tight_layout()
figure.savefig(sys.argv[2], dpi=100)
print(f"wrote {sys.argv[2]}")
