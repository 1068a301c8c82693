#!/usr/bin/python3
"""Draws `brisk speedup`'s time-vs-accuracy frontiers from report.json.

    /usr/bin/python3 tools/plot_pareto.py OUT/report.json OUT/pareto.png

Per recipe: the median point at each budget with a cross spanning the seeds'
[min, max] time and quality (test accuracy, or the loss of a report made with
--target-loss), the median frontier as a line, and each target as a dotted
horizontal line. Needs Debian's python3-matplotlib.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    rep = json.load(open(sys.argv[1]))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, c in rep["configs"].items():
        b = c.get("budgets", [])
        if not b:
            continue
        x = [p["seconds_median"] for p in b]
        # quality_*: the report's metric (older reports have accuracy only)
        med, lo, hi = ("quality_median", "quality_min", "quality_max") if "quality_median" in b[0] else (
            "acc_median", "acc_min", "acc_max")
        y = [p[med] for p in b]
        xerr = [[p["seconds_median"] - p["seconds_min"] for p in b], [p["seconds_max"] - p["seconds_median"] for p in b]]
        yerr = [[p[med] - p[lo] for p in b], [p[hi] - p[med] for p in b]]
        label = name + (" (baseline)" if name == rep["baseline"] else "")
        eb = ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4, capsize=2, label=label)
        fr = c.get("frontier", [])
        if fr:
            ax.plot([p[0] for p in fr], [p[1] for p in fr], "-", color=eb[0].get_color(), lw=1.5)
        for p in b:
            ax.annotate(str(p["budget"]), (p["seconds_median"], p[med]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color=eb[0].get_color())
    for t in rep.get("targets", []):
        ax.axhline(t, ls=":", color="gray", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock training time (s), log scale")
    loss = rep.get("metric") == "loss"
    ax.set_ylabel("loss (lower is better)" if loss else "test accuracy")
    ax.set_title("time-to-%s frontiers (labels: budget in %s)" % ("loss" if loss else "accuracy", rep.get("unit", "epochs")))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
