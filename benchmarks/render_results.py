"""Render ``benchmarks/results/*.json`` as the docs' tables and figures.

The docs never copy a measured number by hand: a page writes ``<!-- results: NAME -->`` on a line of
its own and the docs build replaces it with the table ``TABLES[NAME]`` renders from the JSON files,
and the figures in ``FIGURES`` are drawn from them as SVG files (``figures/NAME.svg`` on the site).
This file is an mkdocs hook (``hooks:`` in ``mkdocs.yml``), so ``mkdocs build`` always shows what the
results files hold; run it directly to look at the output without a docs build::

    python benchmarks/render_results.py --out /tmp/rendered     # every table as .md, every figure as .svg

Figures need matplotlib (the ``[docs]`` extra).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import sys
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)

import beauty_table  # noqa: E402  (a sibling script, importable because HERE is on the path)
import scale_plot  # noqa: E402

MARKER = re.compile(r"^<!-- results: ([a-z0-9-]+) -->$", re.M)
PROTOCOLS = {"all_items": "all items", "exclude_seen": "seen excluded"}


def load(name: str) -> dict:
    with open(os.path.join(RESULTS, name)) as f:
        return json.load(f)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value, digits: int = 4) -> str:
    """``.0591``-style for metrics in [0, 1], plain otherwise; ``-`` for a missing value."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


def mean_std(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return num(values[0], digits)
    return f"{num(statistics.mean(values), digits)} ± {num(statistics.stdev(values), digits)}"


def source(*names: str, command: str | None = None) -> str:
    files = ", ".join(f"`benchmarks/results/{n}`" for n in names)
    return f"\n\nFrom {files}" + (f"; `{command}`." if command else ".")


# --------------------------------------------------------------------------------------------- tables


def beauty() -> str:
    return beauty_table.markdown(load("beauty-cpu.json")) + source("beauty-cpu.json", command="python benchmarks/beauty_table.py")


SPREAD_METRICS = ("all_items/recall@10", "all_items/ndcg@10", "exclude_seen/recall@10", "exclude_seen/ndcg@10")


def _spread_row(label: str, runs: list[dict]) -> list[str]:
    minutes = [r["minutes"] for r in runs if r.get("minutes")]
    ndcg = [r["all_items/ndcg@10"] for r in runs]
    return [label, ", ".join(map(str, sorted({r["seed"] for r in runs}))),
            *(mean_std([r[m] for r in runs], 3) for m in SPREAD_METRICS),
            f"{num(min(ndcg), 3)}-{num(max(ndcg), 3)}", f"{min(minutes):.0f}-{max(minutes):.0f}" if minutes else "-"]


def embedded_spread() -> str:
    report = load("embedded-default-spread-cpu.json")
    groups: dict[str, list[dict]] = {}
    for run in report["runs"]:
        groups.setdefault(f"{run['threads']}", []).append(run)
    groups = dict(sorted(groups.items())) | {"all runs": report["runs"]}
    rows = [_spread_row(label, runs) for label, runs in groups.items()]
    earlier = report.get("earlier", [])
    rows += [_spread_row(f"all runs, earlier: {e['label']}", e["runs"]) for e in earlier]
    header = ["torch threads", "seeds", "R@10 all items", "N@10 all items", "R@10 seen excluded", "N@10 seen excluded",
              "N@10 all items, range", "minutes a run"]
    commands = "; ".join(f"`{c}`" for c in report.get("commands", [report.get("command", "")]))
    return (table(header, rows) + f"\n\nMean ± sample std over the runs. {report['protocol']}. Machine: {report['machine']}"
            + (f"; {report['software']}." if report.get("software") else ".")
            + (f" {report['conditions']}" if report.get("conditions") else "")
            + (f" Finding: {report['finding'].rstrip('.')}." if report.get("finding") else "")
            + "".join(f" Earlier, {e['label']}: {e['how'].rstrip('.')}." for e in earlier if e.get("how"))
            + f"\n\nFrom `benchmarks/results/embedded-default-spread-cpu.json`; {commands}.")


def sasrec_reference() -> str:
    rows = []
    for name, label in (("sasrec-query-norm-beauty-cpu.json", "query-norm block"), ("sasrec-beauty-cpu.json", "pre-norm block")):
        report = load(name)
        for protocol, result in report["rows"].items():
            per_seed = list(result["per_seed"].values())
            rows.append([f"SASRec, reference recipe, {label}", PROTOCOLS[protocol], len(per_seed),
                         *(mean_std([s[m] for s in per_seed]) for m in ("recall@5", "recall@10", "ndcg@5", "ndcg@10"))])
    report = load("sasrec-query-norm-beauty-cpu.json")
    return (table(["model", "protocol", "seeds", "R@5", "R@10", "N@5", "N@10"], rows)
            + f"\n\n{report['data']}; selection: {report['selection']}; mean ± sample std over the seeds."
            + source("sasrec-query-norm-beauty-cpu.json", "sasrec-beauty-cpu.json", command=report["seeds"][0]["command"]))


def sasrec_speed() -> str:
    r = load("sasrec-speed-cpu.json")
    command = f"python benchmarks/sasrec_speed.py --data {r['data']} --steps {r['steps_timed']}"
    rows = [[label, f"{r[key]['seconds_per_step']:.2f} s", f"{r[key]['seconds_per_epoch']:.0f} s"]
            for key, label in (("packed_fused", "packed encoder + fused chunked CE (ours)"),
                               ("padded_unfused", "padded `nn.TransformerEncoder` + `F.cross_entropy`"))]
    return (table(["SASRec training step, batch " + str(r["batch_size"]), "a step", "an epoch"], rows)
            + f"\n\nSpeed-up {r['speedup']:.2f}x; {r['torch_threads']} torch thread, {r['steps_timed']} steps timed, "
              f"{r['machine']}." + source("sasrec-speed-cpu.json", command=command))


def scale() -> str:
    report = load("scale-cpu.json")
    runs = report["runs"]
    sizes = sorted({k.split("/")[0] for k in runs}, key=lambda s: runs.get(f"{s}/prepare", {}).get("interactions", 0))
    notes = report["notes"] if isinstance(report["notes"], list) else [report["notes"]]
    return (scale_plot.markdown_table(runs, sizes) + "\n\nEach cell: time / peak resident memory of the process. "
            + " ".join(notes) + source("scale-cpu.json", command=report["calls"][0]["command"]))


def _serving_rows(name: str, block: dict) -> list[list[str]]:
    rows = []
    for batch, run in block["runs"].items():
        ok = [r for r in run["rates"] if r["target_qps"] <= (run.get("sustainable_qps") or 0)]
        best = ok[-1] if ok else None
        sustainable = run.get("sustainable_qps") or 0
        offered = ", ".join(f"{r['target_qps']:.0f}" for r in run["rates"])
        rows.append([_checkpoint_label(name), batch.replace("max_batch_size=", ""),
                     f"{sustainable:.0f}" if sustainable else f"none of {offered}",
                     *((f"{best[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")) if best else ("-",) * 3)])
    return rows


def serving() -> str:
    report = load("serving-cpu.json")
    rows = []
    for name, block in report["runs"].items():
        rows += _serving_rows(name, block)
    slo = next(iter(report["runs"].values()))["slo_ms"]
    return (table(["checkpoint", "--max_batch_size", "sustainable QPS", "P50 ms", "P95 ms", "P99 ms"], rows)
            + f"\n\nSustainable: the highest offered rate whose P95 stays under {slo:.0f} ms with no errors; "
              "latencies at that rate. " + report["machine"] + "; " + report["software"] + "; server: " + report["server"]
            + "\n\nCommands, per checkpoint: " + "; ".join(f"`{b['command']}`" for b in report["runs"].values())
            + source("serving-cpu.json"))


def serving_hostile() -> str:
    report = load("serving-cpu.json")
    rows = []
    hostile = report["hostile_mix_embedded_default"]
    for run in hostile["runs"].values():
        for r in run["rates"]:
            answers = "; ".join(f"{kind}: " + ", ".join(f"{n} x {code}" for code, n in codes.items())
                                for kind, codes in r["answers_by_kind"].items())
            rows.append(["30% hostile arrivals", f"{r['target_qps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                         r["server_errors_5xx"], answers])
    slow = report["slow_clients_embedded_default"]
    for name, r in slow["runs"].items():
        clients = r.get("slow_clients", {})
        extra = "no slow clients"
        if clients:
            answers = ", ".join(f"{n} x {code}" for code, n in clients["answers_before_close"].items()) or "none"
            held = f", held {clients['held_s_p50']:.0f} s each" if clients["connections_dropped"] else ""
            extra = (f"{clients['clients']} slow clients: {clients['connections_dropped']} connections dropped{held}; "
                     f"answers to them: {answers}")
        rows.append([name.replace("_", " "), f"{r['target_qps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                     r["server_errors_5xx"], extra])
    return (table(["load", "offered QPS", "P50 ms (valid)", "P99 ms (valid)", "5xx", "answers"], rows)
            + f"\n\n{hostile['note']}\n\n{slow['note']}\n\nCommands: `{hostile['command']}`; "
            + "; ".join(f"`{r['command']}`" for r in slow["runs"].values()) + source("serving-cpu.json"))


def hsm() -> str:
    report = load("hsm-cpu.json")
    rows = []
    for items, r in report["sizes"].items():
        rows.append([f"{int(items):,}", r["clusters"],
                     f"{r['hierarchical_step']['ms_per_step']:.0f} / {r['full_step']['ms_per_step']:.0f} ms",
                     f"{r['train_speedup']:.1f}x",
                     f"{r['hierarchical_step']['extra_peak_mb']:.0f} / {r['full_step']['extra_peak_mb']:.0f} MB",
                     " / ".join(f"{r[f'top10_ms_{k}_b1']:.1f}" for k in ("full", "exact", "fast_m4")) + " ms",
                     " / ".join(num(r[f"fast_m{m}_recall@10_vs_exact"], 3) for m in (1, 4, 16))])
    header = ["items", "clusters", "train step, hierarchical / full", "speed-up", "extra peak memory, hier. / full",
              "top-10, 1 query: full / exact / fast (m=4)", "fast path recall@10 vs exact, m = 1 / 4 / 16"]
    return (table(header, rows) + f"\n\n{report['dim']}-d item table, clusters {report['clusters']}, batch {report['batch']}; "
            f"{report['step']}. {report['machine']}." + source("hsm-cpu.json", command=report["command"]))


def cold_start() -> str:
    report = load("cold-start-cpu.json")
    rows = []
    for family, r in report["families"].items():
        before = r.get("warm_before_add", {}).get("ndcg@10")
        rows.append([family, report["recipes"].get(family, ""), num(r["cold"]["recall@10"]), num(r["cold"]["ndcg@10"]),
                     num(r["warm"]["recall@10"]), num(r["warm"]["ndcg@10"]), num(before), num(r["all"]["ndcg@10"])])
    split = report["split"]
    return (table(["family", "recipe", "cold R@10", "cold N@10", "warm R@10", "warm N@10", "warm N@10 before the add",
                   "all N@10"], rows)
            + f"\n\n{split['cold_items']:,} items held out of training ({split['warm_items']:,} kept), protocol "
              f"{PROTOCOLS.get(report['protocol'], report['protocol'])}, seed {report['seed']}. {report['summary']}"
            + source("cold-start-cpu.json", command=report["command"]))


def etegrec_hybrid() -> str:
    report = load("etegrec-hybrid-beauty-cpu.json")
    rows = [[mode, num(report["validation"][mode]["ndcg@10"]), num(r["recall@10"]), num(r["ndcg@10"])]
            for mode, r in report["test"].items()]
    return (table(["ranking", "validation N@10", "test R@10", "test N@10"], rows)
            + f"\n\n{report['note'].rstrip('.')}. Weight chosen on validation: {report['hybrid_weight_chosen_on_validation']}; "
              f"protocol {PROTOCOLS.get(report['protocol'])}; {report['beams']} beams."
            + source("etegrec-hybrid-beauty-cpu.json", command=report["command"]))


CHURN_COMMAND = (
    "python benchmarks/churn_probe.py --out outputs/beauty-cpu --converge_epochs 3 --margins 0 0.02 0.05 0.1 0.2 0.5"
)


def churn() -> str:
    report = load("churn-beauty-cpu.json")
    rows = []
    for start in ("from_kept", "from_converged"):
        for setting, r in report[start].items():
            shares = (f"{100 * r[k]:.1f}%" for k in ("prefix", "level_0", "level_1", "level_2"))
            rows.append([start.replace("_", " "), setting, *shares])
    return (table(["RQ-VAE", "tokenizer lr, recode_margin", "items re-coded (any level)", "level 0", "level 1", "level 2"], rows)
            + f"\n\nOne tokenizer epoch ({report['steps']} steps of {report['batch']}) over {report['items']:,} items."
            + source("churn-beauty-cpu.json", command=CHURN_COMMAND))


def step_profile() -> str:
    rows, commands = [], []
    names = ("step-profile-beauty-cpu-128x2.json", "step-profile-beauty-cpu-64x2-h20.json")
    for name in names:
        r = load(name)
        hidden, layers = (int(x) for x in r["model"].split(" x "))
        history = r.get("max_history", 50)  # files written before the flag existed used 50
        commands.append(f"`python benchmarks/step_profile.py --out outputs/beauty-cpu --hidden {hidden} --layers {layers} "
                        f"--max_history {history}` ({r['threads']} threads, batch {r['batch']})")
        for batches in ("random", "grouped"):
            b = r[batches]
            rows.append([f"LLaMA {r['model']}, {history}-item histories", batches,
                         f"{100 * b['real_token_share']:.0f}%", f"{b['joint_tokens_per_s']:,.0f}",
                         f"{b['backbone_tokens_per_s']:,.0f}", f"{b['epoch_minutes']:.1f}"])
    return (table(["model", "batches", "real tokens", "step tokens/s", "bare backbone tokens/s", "epoch minutes"], rows)
            + "\n\nAn ETEGRec training step on Beauty. Commands: " + "; ".join(commands) + source(*names))


def gpu() -> str:
    gen, train = load("gpu-h200/generate_7b.json"), load("gpu-h200/train_7b.json")
    beauty_gpu = load("gpu-h200/beauty-gpu.json")
    etegrec = beauty_gpu["variants"]["etegrec"]
    rows = [
        ["`generate()`, 7B shape, bf16, " + f"{gen['history_tokens']}-token history, {gen['num_beams']} beams, "
         f"{gen['num_items']:,} items", f"{gen['ours']['users_per_s']:.1f} users/s, peak {gen['ours']['peak_memory_gb']:.1f} GB; "
         f"{100 * gen['ours']['valid_items']:.0f}% real items; copied KV cache {gen['copied_cache']['users_per_s']:.1f} users/s "
         f"({'same' if gen['copied_cache']['same_ranking_as_ours'] else 'not the same'} top-10 as ours on the GPU); "
         f"the design document's version {gen['design']['users_per_s']:.2f} users/s, "
         f"{100 * gen['design']['valid_items']:.0f}% real items ({gen['speedup']:.1f}x)"],
        [f"LoRA training step, 7B shape, batch {train['batch']} x {train['seq_len']} tokens, {train['optim']}, checkpointing",
         f"{train['tokens_per_s']:,.0f} tokens/s ({train['s_per_step']:.2f} s a step); peak {train['peak_memory_gb']:.2f} GB, "
         f"estimate {train['estimated_memory_gb']:.2f} GB"],
        [f"Beauty, `beauty.py --preset {beauty_gpu['preset']}`, {beauty_gpu['minutes']['etegrec']:.1f} minutes",
         f"test R@10 {num(etegrec['recall@10'])}, N@10 {num(etegrec['ndcg@10'])} (all items)"],
    ]
    return (table(["figure (" + gen["device"] + ")", "value"], rows)
            + source("gpu-h200/generate_7b.json", "gpu-h200/train_7b.json", "gpu-h200/beauty-gpu.json",
                     command="bash benchmarks/gpu_check.sh speed|beauty"))


TABLES: dict[str, Callable[[], str]] = {
    "beauty": beauty, "embedded-spread": embedded_spread, "sasrec-reference": sasrec_reference,
    "sasrec-speed": sasrec_speed, "scale": scale, "serving": serving, "serving-hostile": serving_hostile, "hsm": hsm,
    "cold-start": cold_start, "etegrec-hybrid": etegrec_hybrid, "churn": churn, "step-profile": step_profile, "gpu": gpu,
}

# -------------------------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "hf_genrec", "font.size": 9})
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    fig.clf()
    return buffer.getvalue()


def validation_curves() -> bytes:
    """Validation N@10 (seen excluded) against epoch for every seed of both SASRec reference runs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, label, color in (("sasrec-query-norm-beauty-cpu.json", "query-norm block", "C0"),
                               ("sasrec-beauty-cpu.json", "pre-norm block", "C1")):
        for i, seed in enumerate(load(name)["seeds"]):
            epochs, ndcg = zip(*seed["validation_curve"])
            ax.plot(epochs, ndcg, color=color, alpha=0.8, marker=".", label=label if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@10, seen excluded")
    ax.set_title("SASRec reference recipe on Amazon Beauty, every seed")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _svg(fig)


def scale_figure() -> bytes:
    plt = _pyplot()
    runs = load("scale-cpu.json")["runs"]
    sizes = sorted({k.split("/")[0] for k in runs}, key=lambda s: runs.get(f"{s}/prepare", {}).get("interactions", 0))
    fig = scale_plot.figure(plt, runs, sizes)
    return _svg(fig)


def _checkpoint_label(name: str) -> str:
    """``"Beauty size (12,101 items, LLaMA 64x2 = ...)"`` -> ``"Beauty size, 12,101 items, LLaMA 64x2"``."""
    items = re.search(r"[\d,]+ items", name)
    backbone = re.search(r"LLaMA \d+ ?x ?\d+", name)
    return ", ".join([name.split(" (")[0], *(m.group(0) for m in (items, backbone) if m)])


def serving_latency() -> bytes:
    """P50 and P99 against the achieved rate, per checkpoint, micro-batched and one request at a time."""
    plt = _pyplot()
    report = load("serving-cpu.json")
    fig, (p50, p99) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, (name, block) in enumerate(report["runs"].items()):
        if "continuation" in name:
            continue
        for batch, run in block["runs"].items():
            rates = [r for r in run["rates"] if not r["errors"]]
            if not rates:
                continue
            style = "-" if batch.endswith("=64") else "--"
            label = _checkpoint_label(name)
            for ax, key in ((p50, "p50_ms"), (p99, "p99_ms")):
                ax.plot([r["achieved_qps"] for r in rates], [r[key] for r in rates], style, color=f"C{i}", marker="o",
                        label=f"{label}, {batch}")
    for ax, title in ((p50, "P50"), (p99, "P99")):
        ax.set_yscale("log")
        ax.set_xlabel("achieved requests / s")
        ax.set_title(f"{title} latency (error-free rates only)")
        ax.grid(True, which="both", alpha=0.3)
    p50.set_ylabel("ms")
    slo = report["runs"][next(iter(report["runs"]))]["slo_ms"]
    p99.axhline(slo, color="grey", linestyle=":", linewidth=1)
    p99.text(p99.get_xlim()[0], slo * 1.1, f" SLO {slo:.0f} ms", color="grey", fontsize=7)
    p50.legend(fontsize=6)
    fig.suptitle("hf-genrec serve on the 2-core CPU (server and load generator on the same cores)")
    fig.tight_layout()
    return _svg(fig)


def embedded_spread_figure() -> bytes:
    plt = _pyplot()
    report = load("embedded-default-spread-cpu.json")
    fig, ax = plt.subplots(figsize=(8, 3.4))
    groups = [(report["runs"], t, f"C{t - 1}", dict(marker="o" if t == 1 else "s"), f"{t} torch thread(s)") for t in (1, 2)]
    for e, grey in zip(report.get("earlier", []), ("0.35", "0.65")):
        groups += [(e["runs"], t, grey, dict(marker="o" if t == 1 else "s", facecolors="none"),
                    f"{t} thread(s), earlier: {e['label']}") for t in (1, 2)]
    for j, metric in enumerate(("all_items/ndcg@10", "exclude_seen/ndcg@10")):
        for k, (runs, threads, color, style, label) in enumerate(groups):
            values = [r[metric] for r in runs if r["threads"] == threads]
            ax.scatter([j + (k - (len(groups) - 1) / 2) * 0.12] * len(values), values, alpha=0.85,
                       edgecolors=color, color=color if "facecolors" not in style else None,
                       label=label if j == 0 else None, **style)
    ax.set_xticks([0, 1], ["N@10, all items", "N@10, seen excluded"])
    ax.set_ylabel("test NDCG@10")
    ax.set_title("The embedded default, one dot a seed")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return _svg(fig)


def _has_curve(run: dict) -> bool:
    stages = run.get("validation_ndcg@10") or {}
    return bool(stages.get("alternating") or stages.get("finetune"))


def embedded_validation_curves() -> bytes:
    """Validation N@10 after every evaluated epoch of each embedded-default run: the alternating
    stage's epochs (faint), then fine-tuning's (strong), numbered on from the run's last alternating
    evaluation (a stage that stopped early starts its fine-tuning sooner)."""
    plt = _pyplot()
    report = load("embedded-default-spread-cpu.json")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    curves = [(run, f"C{run['threads'] - 1}", "-", f"{run['threads']} torch thread(s)") for run in report["runs"]]
    for e, grey in zip(report.get("earlier", []), ("0.35", "0.65")):
        curves += [(run, grey, "--", f"earlier: {e['label']}") for run in e.get("curves", e["runs"])]
    labelled = set()
    for run, color, style, label in (c for c in curves if _has_curve(c[0])):
        stages = run["validation_ndcg@10"]
        alternating = stages.get("alternating") or []
        offset = alternating[-1][0] if alternating else 0.0
        finetune = [[offset + epoch, ndcg] for epoch, ndcg in stages.get("finetune") or []]
        # the fine-tuning line starts at the last alternating point, so each run reads as one curve
        for points, alpha in ((alternating, 0.3), (alternating[-1:] + finetune, 0.9)):
            if len(points) > 0:
                epochs, ndcg = zip(*points)
                ax.plot(epochs, ndcg, style, color=color, alpha=alpha, marker=".",
                        label=None if label in labelled or alpha < 0.5 else label)
        labelled.add(label)
    ax.set_xlabel("epoch: alternating (faint), then fine-tuning on the frozen codes (strong)")
    ax.set_ylabel("validation NDCG@10, all items")
    ax.set_title("The embedded default: validation during training, every run")
    ax.grid(True, alpha=0.3)
    if labelled:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _svg(fig)


FIGURES: dict[str, Callable[[], bytes]] = {
    "validation-curves": validation_curves, "scale": scale_figure, "serving-latency": serving_latency,
    "embedded-spread": embedded_spread_figure, "embedded-validation": embedded_validation_curves,
}


def render_markdown(markdown: str) -> str:
    """Every ``<!-- results: NAME -->`` line replaced by its table; an unknown name is an error."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise KeyError(f"<!-- results: {name} -->: no such table; known: {', '.join(sorted(TABLES))}")
        return TABLES[name]()

    return MARKER.sub(replace, markdown)


# ------------------------------------------------------------------------------------ the mkdocs hook


def on_files(files, config):
    """Add every figure to the site as ``figures/NAME.svg`` (generated, never committed)."""
    from mkdocs.structure.files import File

    for name, draw in FIGURES.items():
        files.append(File.generated(config, f"figures/{name}.svg", content=draw()))
    return files


def on_page_markdown(markdown, page, config, files):
    return render_markdown(markdown)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for NAME.md (tables) and NAME.svg (figures)")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    for name, render in TABLES.items():
        with open(os.path.join(a.out, f"{name}.md"), "w") as f:
            f.write(render() + "\n")
    for name, draw in FIGURES.items():
        with open(os.path.join(a.out, f"{name}.svg"), "wb") as f:
            f.write(draw())
    print(f"wrote {len(TABLES)} tables and {len(FIGURES)} figures to {a.out}")


if __name__ == "__main__":
    main()
