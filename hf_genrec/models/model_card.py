"""The model card (``README.md``) every saved recommender carries.

Metrics go in as a ``model-index`` so the Hub shows them. The ``evaluate`` package's only writer of
that block (``evaluate.push_to_hub``) checks the Hub for the model and dataset before writing, so
it cannot run offline or before the first upload; ``huggingface_hub``'s ``ModelCardData``, which
it builds on, writes the same YAML locally.
"""

from __future__ import annotations

import os

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A **{{ family }}** recommender trained with [hf_genrec](https://github.com/hf-genrec/hf_genrec).

| | |
| --- | --- |
| family | `{{ model_class }}` (`model_type: {{ model_type }}`) |
| backbone | {{ backbone }} |
| catalogue | {{ num_items }} items (`item_map.json` maps your item ids to the model's) |
| data | {{ dataset }} |

{{ metrics_table }}

## How to use

```python
import hf_genrec  # registers the model families with the Auto classes
from transformers import AutoModel

model = AutoModel.from_pretrained("path/to/this/folder")  # or its Hub repo id
out = model.recommend([history_of_item_ids], top_k=10)  # your own item ids, oldest first
out.items, out.scores                                   # best first
```
"""


def _backbone_line(config) -> str:
    parts = []
    for prefix in ("", "item_", "user_"):
        bc = getattr(config, f"{prefix}backbone_config", None)
        if bc is None:
            continue
        name = getattr(config, f"{prefix}backbone_name_or_path", None) or "random init"
        shape = f"{getattr(bc, 'num_hidden_layers', '?')} layers x {getattr(bc, 'hidden_size', '?')} wide"
        lora = f", LoRA r={config.lora_r}" if getattr(config, f"{prefix}use_lora", False) else ""
        label = prefix.rstrip("_") + " " if prefix else ""
        parts.append(f"{label}`{bc.model_type}` ({name}; {shape}{lora})")
    if not parts and hasattr(config, "num_layers"):  # a family with its own transformer (SASRec)
        parts.append(f"its own transformer ({config.num_layers} layers x {config.hidden_size} wide)")
    return "; ".join(parts) or "none"


def write_model_card(model, save_directory: str) -> str:
    """Write ``README.md`` for ``model`` into ``save_directory``; returns its path."""
    config = model.config
    results = getattr(config, "evaluation_results", None) or {}
    metrics = results.get("metrics", {})
    dataset = results.get("dataset", "unknown")
    # Not the folder name: push_to_hub saves through a temporary folder.
    name = f"{type(model).__name__} on {dataset}"
    eval_results = [
        EvalResult(
            task_type="recommendation",
            task_name="Sequential recommendation (leave-one-out, full ranking"
            + {"exclude_seen": ", seen items excluded", "all_items": ", all items ranked"}.get(results.get("protocol"), "")
            + ")",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=results.get("split", "test"),
            metric_type=metric,
            metric_name=metric,
            metric_value=value,
        )
        for metric, value in metrics.items()
    ]
    data = ModelCardData(
        library_name="hf_genrec",
        tags=["recommendation", "generative-recommendation", config.model_type],
        model_name=name,
        eval_results=eval_results or None,
    )
    table = ""
    if metrics:
        table = f"Evaluation ({dataset}, {results.get('split', 'test')} split):\n\n| metric | value |\n| --- | --- |\n"
        table += "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    card = ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        model_name=name,
        family=type(model).__name__.split("For")[0],
        model_class=type(model).__name__,
        model_type=config.model_type,
        backbone=_backbone_line(config),
        num_items=config.num_items,
        dataset=dataset,
        metrics_table=table,
    )
    path = os.path.join(save_directory, "README.md")
    card.save(path)
    return path


def add_card_tags(save_directory: str, tags: list[str]) -> None:
    """Add ``tags`` to the card's metadata in ``save_directory`` (kept once each, in order)."""
    path = os.path.join(save_directory, "README.md")
    card = ModelCard.load(path)
    card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *tags]))
    card.save(path)
