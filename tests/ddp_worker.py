"""Run by tests/test_ddp.py under ``accelerate launch --num_processes 2 --cpu``: a few steps of
alternating training on a tiny model; every rank writes what it ended with."""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hf_genrec import GenRecTrainer  # noqa: E402
from hf_genrec.data_collator import DataCollatorForCodeSeq  # noqa: E402
from hf_genrec.metrics import ranking_metrics  # noqa: E402
from tests.test_trainer import args as trainer_test_args  # noqa: E402
from tests.test_trainer import setup  # noqa: E402


def main(out_dir: str) -> None:
    dsd, emb, tok, rec = setup(num_items=20)
    args = trainer_test_args(
        out_dir + "/run",
        per_device_train_batch_size=8,
        per_device_eval_batch_size=5,
        save_strategy="epoch",
        save_total_limit=1,
    )
    # 47 users: the distributed sampler pads to 48, so a duplicate would show in the metrics.
    validation = dsd["validation"].select(range(47))
    trainer = GenRecTrainer(
        model=rec, item_tokenizer=tok, item_embeddings=emb, args=args, train_dataset=dsd["train"], eval_dataset=validation
    )
    trainer.train()
    metrics = trainer.evaluate()
    # The same model scored on one process, every user once.
    batch = DataCollatorForCodeSeq(rec.item_codes.cpu())(list(validation))
    n = batch["input_ids"].shape[1] - 3
    with torch.no_grad():
        top = rec.generate(batch["input_ids"][:, :n], batch["attention_mask"][:, :n], num_beams=10, num_return_sequences=10)
    single = ranking_metrics(top.item_ids, batch["targets"])
    rank = trainer.args.process_index
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "world_size": trainer.args.world_size,
                "codebooks": [b.weight.tolist() for b in rec.codebooks],
                "tokenizer_codebooks": [b.weight.tolist() for b in tok.codebooks],
                "item_codes": rec.item_codes.tolist(),
                "lora_sum": float(sum(p.double().sum() for n, p in rec.named_parameters() if "lora_" in n)),
                "metrics": {k: v for k, v in metrics.items() if "@" in k},
                "single_process_metrics": single,
                "checkpoints": sorted(os.listdir(args.output_dir)) if os.path.isdir(args.output_dir) else [],
            },
            f,
        )


if __name__ == "__main__":
    main(sys.argv[1])
