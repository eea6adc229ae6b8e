"""Print every Beauty row of a results table as one markdown table, grouped by protocol, best first,
beside the published anchors (each with the protocol it was measured under).

    python benchmarks/beauty_table.py                      # benchmarks/results/beauty-cpu.json
    python benchmarks/beauty_table.py --results FILE.json

A row with several seeds shows mean ± std (``test_mean`` / ``test_std``); a one-run row its ``test``.
"""

from __future__ import annotations

import argparse
import json

PROTOCOL_NAMES = {"exclude_seen": "seen excluded", "all_items": "all items", "unstated": "not stated"}
COLUMNS = ("recall@10", "ndcg@10")


def cell(mean, std=None) -> str:
    if mean is None:
        return "-"
    if isinstance(mean, str):  # a published range, e.g. "0.0591-0.0601"
        return mean
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def table_rows(report: dict) -> list[tuple[str, str, str, dict[str, str], float]]:
    """``(name, protocol, seeds, cells, sort key)`` per row of ours and per published anchor."""
    rows = []
    for name, row in report["rows"].items():
        protocol = row.get("protocol", "all_items")
        if "test_mean" in row:
            mean, std, seeds = row["test_mean"], row.get("test_std", {}), str(len(row["seeds"]))
        else:
            mean, std, seeds = row["test"], {}, str(len(row.get("seeds", [0])))
        cells = {c: cell(mean.get(c), std.get(c) if int(seeds) > 1 else None) for c in COLUMNS}
        rows.append((name, protocol, seeds, cells, mean.get("ndcg@10") or 0.0))
    for name, row in report.get("published", {}).items():
        ndcg = row.get("ndcg@10")
        key = float(str(ndcg).split("-")[0]) if ndcg is not None else 0.0
        rows.append((f"{name} (published)", row["protocol"], "-", {c: cell(row.get(c)) for c in COLUMNS}, key))
    order = list(PROTOCOL_NAMES)
    # By protocol, then N@10 (best first); at a tie the published anchor comes first.
    return sorted(rows, key=lambda r: (order.index(r[1]) if r[1] in order else len(order), -r[4], r[2] != "-"))


def markdown(report: dict) -> str:
    lines = ["| model | protocol | seeds | R@10 | N@10 |", "| --- | --- | --- | --- | --- |"]
    for name, protocol, seeds, cells, _ in table_rows(report):
        lines.append(f"| {name} | {PROTOCOL_NAMES.get(protocol, protocol)} | {seeds} | "
                     + " | ".join(cells[c] for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="benchmarks/results/beauty-cpu.json")
    a = p.parse_args(argv)
    with open(a.results) as f:
        text = markdown(json.load(f))
    print(text)
    return text


if __name__ == "__main__":
    main()
