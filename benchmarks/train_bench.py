"""Training throughput of ETEGRecTrainer (recommender phase) for a backbone shape, with the memory
estimate beside the measured peak.

    python benchmarks/train_bench.py --shape tiny --steps 10                  # CPU smoke run
    python benchmarks/train_bench.py --shape 7b --batch 32 --steps 30 \\
        --bf16 --optim adamw_bnb_8bit --checkpointing                        # one H100

Every example has a 50-item history (200 tokens + 3 target-prefix tokens). LoRA r=64 on q/k/v/o for
the 7B shape (random init). Steps after ``--warmup`` are timed; tokens/s counts real tokens.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from generate_bench import SHAPES  # the script's folder is on sys.path
from transformers import TrainerCallback

from hf_genrec import ETEGRecTrainer, ETEGRecTrainingArguments, LlamaRecConfig, LlamaRecForCodeGeneration
from hf_genrec.memory import estimate_training_memory
from hf_genrec.models.rqvae import RQVAEConfig, RQVAEModel, assign_suffix


class StepTimer(TrainerCallback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.steps = warmup, None, 0

    def on_step_end(self, args, state, control, **kw):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if state.global_step == self.warmup:
            self.start = time.perf_counter()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        elif state.global_step > self.warmup:
            self.steps = state.global_step - self.warmup


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--history", type=int, default=50)
    p.add_argument("--num_items", type=int, default=12101)
    p.add_argument("--lora_r", type=int, default=64)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--optim", default="adamw_torch")
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if a.bf16 else torch.float32
    backbone = dict(SHAPES[a.shape], model_type="llama", vocab_size=8, max_position_embeddings=1024, tie_word_embeddings=False)
    config = LlamaRecConfig(
        backbone_config=backbone, num_items=a.num_items, use_lora=a.shape == "7b", lora_r=a.lora_r, lora_alpha=2 * a.lora_r
    )
    with torch.device("cuda" if cuda else "cpu"):
        model = LlamaRecForCodeGeneration(config)
    model.backbone.to(dtype)
    model.freeze_backbone_bases()  # LoRA adapters back to fp32 after the cast
    gen = torch.Generator().manual_seed(0)
    model.set_item_codes(assign_suffix(torch.randint(0, 256, (a.num_items, 3), generator=gen), 256))
    tok = RQVAEModel(RQVAEConfig(semantic_dim=256))
    emb = torch.randn(a.num_items, 256, generator=gen)
    rows = [
        {
            "history": torch.randint(1, a.num_items + 1, (a.history,), generator=gen).tolist(),
            "target": int(torch.randint(1, a.num_items + 1, (1,), generator=gen)),
        }
        for _ in range(a.batch * (a.steps + a.warmup))
    ]
    timer = StepTimer(a.warmup)
    args = ETEGRecTrainingArguments(
        output_dir=tempfile.mkdtemp(),
        max_steps=a.steps + a.warmup,
        per_device_train_batch_size=a.batch,
        alternating=False,
        bf16=a.bf16,
        optim=a.optim,
        gradient_checkpointing=a.checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        logging_steps=10**6,
        use_cpu=not cuda,
        dataloader_num_workers=2,
        max_history=a.history,
    )
    trainer = ETEGRecTrainer(
        model=model, item_tokenizer=tok, item_embeddings=emb, args=args, train_dataset=rows, callbacks=[timer]
    )
    trainer.train()
    secs = time.perf_counter() - timer.start
    seq_len = a.history * 4 + 3
    tokens = timer.steps * a.batch * seq_len
    est = estimate_training_memory(
        config, a.batch, seq_len, optim=a.optim, gradient_checkpointing=a.checkpointing, weight_dtype=dtype
    )
    report = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "shape": a.shape,
        "batch": a.batch,
        "seq_len": seq_len,
        "bf16": a.bf16,
        "optim": a.optim,
        "checkpointing": a.checkpointing,
        "timed_steps": timer.steps,
        "tokens_per_s": tokens / secs,
        "s_per_step": secs / timer.steps,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "estimated_memory_gb": est.total / 2**30,
    }
    print(json.dumps(report, indent=2))
    print(est.table())
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
