"""Run by tests/test_ddp.py under ``accelerate launch`` with 2 CPU processes (gloo): a few steps of
alternating training on a tiny model; every rank writes what it ended with.

- ``python ddp_worker.py OUT_DIR [ddp|fsdp|fsdp-bf16]`` (launch fsdp-bf16 with ``--mixed_precision bf16``);
- ``python ddp_worker.py OUT_DIR fsdp-example ARGS...`` runs ``examples/run_etegrec.py ARGS...`` (every
  stage: SASRec, RQ-VAE, alternating, fine-tuning) under FSDP.

accelerate enables FSDP only on accelerators, so the fsdp modes turn its multi-CPU state into an
FSDP one (the plugin comes from the launch config, as on GPUs); from there on the run takes
accelerate's and the Trainer's real FSDP2 path.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from hf_genrec import DataCollatorForRecommendation, ETEGRecTrainer, LlamaRecForCodeGeneration
from hf_genrec.distributed import gathered_root_parameters
from hf_genrec.metrics import ranking_metrics
from tests.test_trainer import args as trainer_test_args
from tests.test_trainer import setup


def emulate_fsdp_on_cpu() -> None:
    import accelerate.state as accelerate_state
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    init = accelerate_state.AcceleratorState.__init__

    def fsdp_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # Every AcceleratorState() re-reads the process-level type (MULTI_CPU), so override it each time.
        if self.distributed_type == DistributedType.MULTI_CPU and os.environ.get("ACCELERATE_USE_FSDP") == "true":
            if getattr(self, "fsdp_plugin", None) is None:
                self.fsdp_plugin = kwargs.get("fsdp_plugin") or FullyShardedDataParallelPlugin()
                if self._mixed_precision != "no":  # as accelerate's accelerator branch does
                    self.fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.distributed_type = DistributedType.FSDP

    accelerate_state.AcceleratorState.__init__ = fsdp_init


def full(t: torch.Tensor) -> torch.Tensor:
    """A parameter's whole value (gathers a sharded DTensor; a collective, so every rank calls it)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def main(out_dir: str, mode: str) -> None:
    if mode.startswith("fsdp"):
        emulate_fsdp_on_cpu()
    dsd, emb, tok, rec = setup(num_items=20)
    args = trainer_test_args(
        out_dir + "/run",
        per_device_train_batch_size=8,
        per_device_eval_batch_size=5,
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="ndcg@10",
        bf16=os.environ.get("ACCELERATE_MIXED_PRECISION") == "bf16",
        # Every copy direction and its re-assignment, under DDP / FSDP sharding.
        codebook_sync="both",
    )
    writes = []
    save_pretrained = rec.save_pretrained
    rec.save_pretrained = lambda *a, **kw: writes.append(a[0]) or save_pretrained(*a, **kw)
    # 47 users: the distributed sampler pads to 48, so a duplicate would show in the metrics.
    validation = dsd["validation"].select(range(47))
    trainer = ETEGRecTrainer(
        model=rec, item_tokenizer=tok, item_embeddings=emb, args=args, train_dataset=dsd["train"], eval_dataset=validation
    )
    trainer.train()
    metrics = trainer.evaluate()
    final_dir = os.path.join(out_dir, "final")
    trainer.save_model(final_dir)
    # The same model scored on one process, every user once.
    batch = DataCollatorForRecommendation()(list(validation))
    k = max(args.metric_ks)
    sharded_error = ""
    if trainer.is_fsdp_enabled:
        try:
            rec.top_k_items(batch["history"], k)
        except RuntimeError as e:
            sharded_error = str(e)
    with torch.no_grad(), gathered_root_parameters(trainer.model):
        top = rec.top_k_items(batch["history"], k, num_beams=args.eval_num_beams)
    single = ranking_metrics(top.item_ids, batch["targets"], args.metric_ks)
    with torch.no_grad():
        state = {
            "codebooks": [full(b.weight).tolist() for b in rec.codebooks],
            "tokenizer_codebooks": [full(b.weight).tolist() for b in tok.codebooks],
            "lora_sum": float(sum(full(p).double().sum() for n, p in rec.named_parameters() if "lora_" in n)),
        }
    torch.distributed.barrier()  # rank 0 has finished writing final_dir
    reloaded = LlamaRecForCodeGeneration.from_pretrained(final_dir).eval()
    with torch.no_grad():
        top_reloaded = reloaded.top_k_items(batch["history"], k, num_beams=args.eval_num_beams)
    rank = trainer.args.process_index
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                **state,
                "world_size": trainer.args.world_size,
                "fsdp": trainer.is_fsdp_enabled,
                "item_codes": rec.item_codes.tolist(),
                "metrics": {k: v for k, v in metrics.items() if "@" in k},
                "single_process_metrics": single,
                "top_items": top.item_ids.tolist(),
                "reloaded_top_items": top_reloaded.item_ids.tolist(),
                "best_checkpoint": os.path.basename(trainer.state.best_model_checkpoint or ""),
                "checkpoints": sorted(os.listdir(args.output_dir)) if os.path.isdir(args.output_dir) else [],
                "writes": writes,
                "sharded_error": sharded_error,
            },
            f,
        )


def run_example_under_fsdp(example_args: list[str]) -> None:
    from hf_genrec.recipes.etegrec import main

    emulate_fsdp_on_cpu()
    main(example_args)


if __name__ == "__main__":
    mode = sys.argv[2] if len(sys.argv) > 2 else "ddp"
    if mode == "fsdp-example":
        run_example_under_fsdp(["--config", "embedded", "--output_dir", sys.argv[1], *sys.argv[3:]])
    else:
        main(sys.argv[1], mode)
