"""Log-log plot of cost against size from ``benchmarks/scale.py``'s results.

python benchmarks/scale_plot.py --results benchmarks/results/scale-cpu.json --out docs/figures/scale.png
"""

from __future__ import annotations

import argparse
import json

#: (job, field, label, scale to minutes)
SERIES = (
    ("prepare", "prepare_seconds", "prepare (hf_genrec, polars)", 1 / 60),
    ("bare_polars", "prepare_seconds", "prepare (bare polars script)", 1 / 60),
    ("prepare_old", "prepare_seconds", "prepare (earlier code, Python objects)", 1 / 60),
    ("sasrec_train", "epoch_minutes", "SASRec epoch (extrapolated)", 1),
    ("etegrec", "epoch_minutes", "ETEGRec epoch, 64x2 (extrapolated)", 1),
    ("hllm", "epoch_minutes", "HLLM epoch, light 64x2 (extrapolated)", 1),
    ("sasrec_eval", "eval_minutes", "SASRec full evaluation (every user, every item)", 1),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="benchmarks/results/scale-cpu.json")
    p.add_argument("--out", default="docs/figures/scale.png")
    a = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = json.load(open(a.results))["runs"]
    sizes = sorted({k.split("/")[0] for k in runs}, key=lambda s: runs[f"{s}/prepare"]["interactions"] if f"{s}/prepare" in runs else 0)
    fig, (cost, memory) = plt.subplots(1, 2, figsize=(12, 4.8))
    for job, field, label, scale in SERIES:
        points = [(runs[f"{s}/prepare"]["interactions"], runs[f"{s}/{job}"][field] * scale, runs[f"{s}/{job}"]["peak_rss_gb"])
                  for s in sizes if f"{s}/{job}" in runs and f"{s}/prepare" in runs]
        if not points:
            continue
        x, minutes, gb = zip(*points)
        cost.plot(x, minutes, marker="o", label=label)
        memory.plot(x, gb, marker="o", label=label)
    for ax, title, unit in ((cost, "time", "minutes"), (memory, "peak resident memory of the process", "GB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions after the 5-core")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    memory.axhline(24, color="grey", linestyle="--", linewidth=1)
    memory.text(memory.get_xlim()[0], 24 * 1.05, " this machine: 24 GB", color="grey", fontsize=8)
    cost.legend(fontsize=7)
    fig.suptitle("hf_genrec cost against size (synthetic MovieLens-format logs, 2-core CPU)")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
