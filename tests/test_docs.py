"""The docs site's runnable code blocks (a fence right after ``<!-- runnable -->``) run, in page
order, in one scratch folder per page, so the pages cannot drift from the code."""

from __future__ import annotations

import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- runnable -->\n```(bash|python)\n(.*?)\n```", re.S)


def runnable_blocks(page: pathlib.Path) -> list[tuple[str, str]]:
    return BLOCK.findall(page.read_text())


PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if runnable_blocks(p))


def test_the_quick_tour_is_marked_runnable():
    assert ROOT / "docs" / "index.md" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_pages_runnable_blocks_run(page, tmp_path):
    (tmp_path / "outputs").mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1")
    for number, (language, code) in enumerate(runnable_blocks(page), 1):
        cmd = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{page.name} block {number} ({language}):\n{code}\n{proc.stderr[-3000:]}"


# ------------------------------------------------------------------ tables and figures from results
sys.path.insert(0, str(ROOT / "benchmarks"))
import render_results  # noqa: E402  (benchmarks/ is not a package)

RESULTS = ROOT / "benchmarks" / "results"


def test_every_results_file_is_rendered_and_every_marker_is_known(monkeypatch):
    read = set()
    real_load = render_results.load
    monkeypatch.setattr(render_results, "load", lambda name: read.add(name) or real_load(name))
    rendered = {name: table() for name, table in render_results.TABLES.items()}
    files = {str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*.json")}
    assert files <= read, f"results files no docs table reads: {sorted(files - read)}"
    assert all("nan" not in text and text.count("|") > 6 for text in rendered.values())
    pages = {p: p.read_text() for p in (ROOT / "docs").rglob("*.md")}
    used = {m for text in pages.values() for m in render_results.MARKER.findall(text)}
    assert used == set(render_results.TABLES), f"tables no page shows: {set(render_results.TABLES) - used}"
    for text in pages.values():
        assert "<!-- results:" not in render_results.render_markdown(text)
    shown = {name for name in render_results.FIGURES if any(f"figures/{name}.svg" in text for text in pages.values())}
    assert shown == set(render_results.FIGURES), f"figures no page shows: {set(render_results.FIGURES) - shown}"
    with pytest.raises(KeyError, match="no-such-table"):
        render_results.render_markdown("<!-- results: no-such-table -->")


def test_a_rendered_table_is_the_results_file():
    report = json.loads((RESULTS / "embedded-default-spread-cpu.json").read_text())
    one = [r for r in report["runs"] if r["threads"] == 1]
    ndcg = [r["all_items/ndcg@10"] for r in one]
    row = next(line for line in render_results.embedded_spread().splitlines() if line.startswith("| 1 |"))
    assert f"{statistics.mean(ndcg):.3f}".lstrip("0") + " ± " + f"{statistics.stdev(ndcg):.3f}".lstrip("0") in row


def test_the_figures_draw():
    pytest.importorskip("matplotlib")
    for name, draw in render_results.FIGURES.items():
        svg = draw()
        assert svg.startswith(b"<?xml") and b"<svg" in svg and len(svg) > 5000, name


#: README headline rows -> their rows in benchmarks/results/beauty-cpu.json (seen items excluded)
README_ROWS = {
    "SASRec, our reference recipe (query-norm blocks)": "SASRec reference recipe, query-norm block (exclude_seen)",
    "HLLM light: MiniLM titles + ID embedding, LLaMA user model":
        "HLLM light, MiniLM titles + ID embedding, CE, user LLaMA 64 x 2, dropout .3 / .3 / .1 (exclude_seen)",
    "ETEGRec-LLaMA, static codes (no alternation)": "ETEGRec-LLaMA static_codes, query-norm SASRec embeddings (exclude_seen)",
    "ETEGRec-LLaMA, alternating (the ETEGRec recipe)": "ETEGRec-LLaMA etegrec, query-norm SASRec embeddings (exclude_seen)",
    "Item-ID LLaMA + hierarchical softmax":
        "itemid_llama (HSM), item table from the query-norm SASRec, whole-sequence, dropout .3 / .3 / .1 (exclude_seen)",
}


def test_the_readme_headline_table_is_the_results_file():
    report = json.loads((RESULTS / "beauty-cpu.json").read_text())
    table = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| ") and line.count("|") == 4)}
    for label, key in README_ROWS.items():
        row = report["rows"][key]
        expected = [f"{render_results.num(row['test_mean'][m])} ± {render_results.num(row['test_std'][m])}"
                    for m in ("recall@10", "ndcg@10")]
        assert table[label] == expected, label
