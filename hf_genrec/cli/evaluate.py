"""Rank a split with any saved checkpoint (every hf_genrec family), as the recipes' test stage does.

    hf-genrec evaluate --checkpoint outputs/etegrec-default/final --data data/beauty [--split test] \\
        [--protocol both|exclude_seen|all_items] [--json FILE] [--set default_num_beams=50 ...]

Leave-one-out, full ranking over the catalogue; ``exclude_seen`` leaves each user's history out of
the ranking, ``all_items`` ranks every item. Prints (and with ``--json`` writes) Recall@k / NDCG@k
per protocol, e.g. ``{"exclude_seen/ndcg@10": ..., "all_items/ndcg@10": ...}``. Use it to score a
trainer checkpoint the recipe did not keep, or an inference setting of the config (``--set``, e.g.
the beam width of ETEGRec's search) without retraining.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from ..training import RecommenderTrainer, RecommenderTrainingArguments
from ..utils.atomic import write_json
from ..utils.errors import InputError
from .errors import load_checkpoint


def parse_overrides(pairs: list[str]) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``: each value parsed as JSON when it is JSON."""
    out = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field:
            raise InputError(f"--set expects FIELD=VALUE, got {pair!r}")
        try:
            out[field] = json.loads(raw)
        except json.JSONDecodeError:
            out[field] = raw
    return out


def main(argv: list[str] | None = None) -> dict:
    from ..recipes.stages import load_dataset

    p = argparse.ArgumentParser(
        prog="hf-genrec evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="a saved model folder (a recipe's final/, a checkpoint-N) or Hub id")
    p.add_argument("--data", required=True, help="a prepared dataset folder, or an interaction file / folder to split")
    p.add_argument("--split", default="test", choices=("validation", "test"))
    p.add_argument(
        "--protocol", default="both", choices=("both", "exclude_seen", "all_items"),
        help="exclude_seen: each user's history items are left out of the ranking; all_items: every item is ranked",
    )
    p.add_argument("--max_history", type=int, default=None, help="history items the model reads (default: the checkpoint's)")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override an inference field of the checkpoint's config before ranking (repeatable; the value is "
        "parsed as JSON, else kept as a string), e.g. default_num_beams=50",
    )
    a = p.parse_args(argv)
    overrides = parse_overrides(a.set)  # a malformed --set fails before the checkpoint is loaded
    model = load_checkpoint(a.checkpoint).eval()
    if not callable(getattr(model, "top_k_items", None)):
        raise InputError(f"{a.checkpoint} holds a {type(model).__name__}, which is not a recommender (no top_k_items)")
    for field, value in overrides.items():
        if not hasattr(model.config, field):
            raise InputError(f"--set {field}: {type(model.config).__name__} has no field {field!r}")
        setattr(model.config, field, value)
    max_history = a.max_history or getattr(model.config, "max_history", None) or 50
    dsd = load_dataset(a.data, max_history=max_history)
    if list(dsd.item_map.original_ids) != list(model.item_map.original_ids):
        # Dense ids of another catalogue would index the wrong items without any error.
        raise InputError(
            f"--data {a.data} has another item map than the checkpoint ({dsd.num_items} items vs {model.config.num_items}, "
            "or the same count in another order): evaluate on the data the model was trained on (its prepared folder)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        args = RecommenderTrainingArguments(
            output_dir=tmp, per_device_eval_batch_size=a.batch_size, max_history=max_history, report_to=[],
            use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
        )
        trainer = RecommenderTrainer(model=model, args=args)
        report = trainer.evaluate_protocols(dsd[a.split], metric_key_prefix=a.split)
    if a.protocol == "both":
        report = {k: v for k, v in report.items() if "/" in k}
    else:
        report = {k.removeprefix(f"{a.protocol}/"): v for k, v in report.items() if k.startswith(f"{a.protocol}/")}
    print(json.dumps(report, indent=2))
    if a.json:
        write_json(a.json, report)
    return report
