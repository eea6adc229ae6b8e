"""Log-log plot of cost against size from ``benchmarks/scale.py``'s results.

python benchmarks/scale_plot.py --results benchmarks/results/scale-cpu.json --out scale.png [--markdown]

The docs draw the same figure at build time (``benchmarks/render_results.py``).

Needs matplotlib (``pip install matplotlib``; not a dependency of the library).
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
    ("etegrec", "epoch_minutes", "ETEGRec recommender epoch, 64x2 (extrapolated)", 1),
    ("hllm", "epoch_minutes", "HLLM epoch, light 64x2 (extrapolated)", 1),
    ("itemid", "epoch_minutes", "item-ID LLaMA epoch, 64x2 + HSM (extrapolated)", 1),
    ("sasrec_eval", "eval_minutes", "SASRec full evaluation (every user, every item)", 1),
)


def _cell(run: dict | None, field: str, unit: str = "") -> str:
    if not run or field not in run:
        return "-"
    value = run[field]
    text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"{text}{unit} / {run['peak_rss_gb']:.1f} GB"


def markdown_table(runs: dict, sizes: list[str]) -> str:
    """One row per measurement, one column per size: time (or extrapolated epoch) and peak memory."""
    head = [runs[f"{s}/prepare"] for s in sizes]
    lines = [
        "| measurement | " + " | ".join(f"{s}: {h['users']:,} users, {h['items']:,} items, {h['interactions']:,} interactions"
                                       for s, h in zip(sizes, head)) + " |",
        "| --- |" + " --- |" * len(sizes),
    ]
    rows = (
        ("prepare, hf_genrec (s)", "prepare", "prepare_seconds", " s"),
        ("prepare, bare polars script (s)", "bare_polars", "prepare_seconds", " s"),
        ("prepare, earlier code (s)", "prepare_old", "prepare_seconds", " s"),
        ("SASRec 64x2, one epoch (min, extrapolated)", "sasrec_train", "epoch_minutes", " min"),
        ("SASRec full evaluation, every test user x every item (min)", "sasrec_eval", "eval_minutes", " min"),
        ("ETEGRec recommender epoch, 64x2 (min, extrapolated)", "etegrec", "epoch_minutes", " min"),
        ("ETEGRec tokenizer epoch (min, extrapolated)", "etegrec", "tokenizer_epoch_minutes", " min"),
        ("ETEGRec evaluation, every test user, 20 beams (min, extrapolated)", "etegrec", "eval_minutes_all_users", " min"),
        ("HLLM light 64x2, one epoch of windows (min, extrapolated)", "hllm", "epoch_minutes", " min"),
        ("HLLM evaluation, every test user (min, extrapolated)", "hllm", "eval_minutes_all_users", " min"),
        ("item-ID LLaMA 64x2 + HSM, one epoch (min, extrapolated)", "itemid", "epoch_minutes", " min"),
        ("item-ID evaluation, every test user (min, extrapolated)", "itemid", "eval_minutes_all_users", " min"),
    )
    for label, job, field, unit in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(runs.get(f"{s}/{job}"), field, unit) for s in sizes) + " |")
    lines.append("| prepared folder (MB) | " + " | ".join(f"{h['folder_mb']:.0f} MB" + (
        f" (earlier layout: {runs[f'{s}/prepare_old']['folder_mb']:.0f} MB)" if f"{s}/prepare_old" in runs else "")
        for s, h in zip(sizes, head)) + " |")
    return "\n".join(lines)


def figure(plt, runs: dict, sizes: list[str]):
    """Cost (minutes) and peak memory (GB) against interactions, log-log, one line per measurement."""
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
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="benchmarks/results/scale-cpu.json")
    p.add_argument("--out", default="scale.png")
    p.add_argument("--markdown", action="store_true", help="also print the figures as a markdown table")
    a = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = json.load(open(a.results))["runs"]
    sizes = sorted({k.split("/")[0] for k in runs}, key=lambda s: runs.get(f"{s}/prepare", {}).get("interactions", 0))
    if a.markdown:
        print(markdown_table(runs, sizes))
    figure(plt, runs, sizes).savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
