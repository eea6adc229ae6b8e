"""SASRec training-step time: the packed encoder + fused chunked cross-entropy (what the model
runs) against the plain padded computation (``nn.TransformerEncoder`` over every position, then
``F.cross_entropy`` over materialised logits), on the same Beauty batches, side by side, one process.

    python benchmarks/sasrec_speed.py --data ../shared/data/amazon-beauty --steps 10 \
        --json benchmarks/results/sasrec-speed-cpu.json

Both compute the same loss and gradients (``tests/test_sasrec.py``); only the time differs. Run it
on a quiet machine: the figure is the ratio of the two, measured in alternation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import torch
import torch.nn.functional as F

from hf_genrec.data import dataset_file_in, leave_one_out, load_interactions, train_sequences
from hf_genrec.embeddings.collaborative import SASRecCollator
from hf_genrec.models.sasrec import SASRecConfig, SASRecModel


def plain_loss(model: SASRecModel, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    h = model.encode_padded(input_ids)
    labels = labels[:, -h.shape[1] :]
    valid = labels > 0
    logits = h[valid] @ model.item_embedding.weight.t()
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, labels[valid])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--steps", type=int, default=10, help="timed steps per implementation (after 2 warm-up steps)")
    p.add_argument("--batch_size", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dsd = leave_one_out(load_interactions(dataset_file_in(a.data)).sequences, max_history=10_000)
    rows = [{"input_ids": s[:-1], "labels": s[1:]} for s in train_sequences(dsd) if len(s) >= 2]
    random.Random(0).shuffle(rows)
    collate = SASRecCollator()
    batches = [collate(rows[i * a.batch_size : (i + 1) * a.batch_size]) for i in range(a.steps + 2)]
    torch.manual_seed(0)
    model = SASRecModel(SASRecConfig(num_items=dsd.num_items, hidden_size=64, num_layers=2, num_heads=1, dropout=0.6))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    steps_per_epoch = -(-len(rows) // a.batch_size)
    runs = {
        "packed_fused": lambda b: model(**b).loss,
        "padded_unfused": lambda b: plain_loss(model, b["input_ids"], b["labels"]),
    }
    seconds = {name: [] for name in runs}
    for i, batch in enumerate(batches):
        for name, loss_fn in runs.items():  # alternate, so both see the same load
            start = time.perf_counter()
            loss = loss_fn(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:
                seconds[name].append(time.perf_counter() - start)
    report = {
        "data": a.data,
        "batch_size": a.batch_size,
        "torch_threads": a.threads,
        "steps_timed": a.steps,
        "steps_per_epoch": steps_per_epoch,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    for name, s in seconds.items():
        mean = sum(s) / len(s)
        report[name] = {"seconds_per_step": mean, "seconds_per_epoch": mean * steps_per_epoch}
        print(f"{name:>15}: {mean:.3f} s a step, {mean * steps_per_epoch:.1f} s an epoch ({steps_per_epoch} steps)")
    report["speedup"] = report["padded_unfused"]["seconds_per_step"] / report["packed_fused"]["seconds_per_step"]
    print(f"speed-up {report['speedup']:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
