"""The docs site's runnable code blocks (a fence right after ``<!-- runnable -->``) run, in page
order, in one scratch folder per page, so the pages cannot drift from the code."""

from __future__ import annotations

import os
import pathlib
import re
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
