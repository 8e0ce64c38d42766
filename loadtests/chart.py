"""Draw receipts committed over time from a benchmark timeline CSV (``--timeline``).

    python -m loadtests.chart out/pipeline-1m.csv docs/receipts-over-time.png [--title ...]

Needs matplotlib (pip install matplotlib); the benchmarks themselves do not.
"""

from __future__ import annotations

import argparse
import csv


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("png")
    p.add_argument("--title", default="smslab: receipts committed over time")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.csv) as f:
        rows = list(csv.DictReader(f))
    t = [float(r["seconds"]) for r in rows]
    committed = [int(r["receipts_committed"]) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if "sent" in rows[0]:
        ax.plot(t, [int(r["sent"]) for r in rows], label="numbers sent (acknowledged by the carrier)", lw=1.2, ls="--")
    ax.plot(t, committed, label="receipts committed", lw=2)
    rates = [(committed[i] - committed[i - 1]) / (t[i] - t[i - 1]) for i in range(1, len(t)) if t[i] > t[i - 1]]
    ax2 = ax.twinx()
    ax2.plot(t[1:len(rates) + 1], rates, color="grey", alpha=0.35, lw=1, label="receipts/s (right axis)")
    ax2.set_ylabel("receipts per second")
    ax.set_xlabel("seconds since the task was created")
    ax.set_ylabel("count")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
