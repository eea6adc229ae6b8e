"""Rank a split with a saved checkpoint (any hf_genrec family), as the recipes' test stage does.

    python benchmarks/evaluate_checkpoint.py --checkpoint outputs/beauty-cpu/etegrec/checkpoint-12336 \\
        --data outputs/beauty-cpu/data --max_history 20 [--split test] [--exclude_history true|false] [--json FILE] \\
        [--set default_num_beams=50 ...]

Used to score a trainer checkpoint that the recipe did not keep as its final model (e.g. the
alternating stage's best when fine-tuning replaced it), or to measure an inference setting of the
config (``--set``, e.g. the beam width of ETEGRec's search) without retraining. Prints and returns
Recall@k / NDCG@k.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch
from transformers import AutoModel

import hf_genrec  # noqa: F401  (registers the Auto classes)
from hf_genrec.data import load_genrec_dataset
from hf_genrec.training import RecommenderTrainer, RecommenderTrainingArguments


def parse_overrides(pairs: list[str]) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``: each value parsed as JSON when it is JSON."""
    out = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field:
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        try:
            out[field] = json.loads(raw)
        except json.JSONDecodeError:
            out[field] = raw
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="a prepared split (save_to_disk folder)")
    p.add_argument("--split", default="test")
    p.add_argument("--max_history", type=int, default=50, help="as in training")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--json", default=None)
    p.add_argument(
        "--exclude_history", choices=("true", "false"), default=None,
        help="rank with the history's items left out (true) or all items (false); default: the checkpoint's "
        "config.exclude_history (checkpoints saved before the trainer recorded it say false)",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override an inference field of the checkpoint's config before ranking (repeatable; the value is "
        "parsed as JSON, else kept as a string), e.g. default_num_beams=50",
    )
    a = p.parse_args(argv)
    overrides = parse_overrides(a.set)  # a malformed --set fails before the checkpoint is loaded
    model = AutoModel.from_pretrained(a.checkpoint).eval()
    for field, value in overrides.items():
        if not hasattr(model.config, field):
            raise ValueError(f"--set {field}: {type(model.config).__name__} has no field {field!r}")
        setattr(model.config, field, value)
    dsd = load_genrec_dataset(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        args = RecommenderTrainingArguments(
            output_dir=tmp, per_device_eval_batch_size=a.batch, max_history=a.max_history, report_to=[],
            use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
            exclude_history=None if a.exclude_history is None else a.exclude_history == "true",
        )
        metrics = RecommenderTrainer(model=model, args=args).evaluate(dsd[a.split], metric_key_prefix=a.split)
    report = {k.removeprefix(f"{a.split}_"): v for k, v in metrics.items() if "@" in k}
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
