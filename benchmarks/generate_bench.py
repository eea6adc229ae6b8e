"""Time LlamaRecForCodeGeneration.generate() against the design document's generate().

A third variant, a plain KV cache copied for every beam, uses the same trie: its ranking must equal
ours (printed as ``same_ranking_as_ours``), only the prefix sharing differs.
The design version (etegrec-llama-v3.3.md) re-runs the full prefix for every beam at every code
level with no KV cache, in chunks of 4 sequences, and does not constrain beams to real items.
Ours prefills each history once, shares that prefix across beams (tree attention), and follows a
prefix trie. Both run on the same model and inputs; the script prints users/s, ms/user and peak
memory, and how many of the design version's top-k are real items.

    python benchmarks/generate_bench.py --shape tiny                       # CPU, seconds
    python benchmarks/generate_bench.py --shape 7b --device cuda --dtype bfloat16 --num_users 512
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

from hf_genrec import LlamaRecConfig, LlamaRecForCodeGeneration

SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4),
    "small": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
}


def build(shape: str, num_items: int, device: str, dtype: torch.dtype, seed: int = 0) -> LlamaRecForCodeGeneration:
    backbone = dict(SHAPES[shape], model_type="llama", vocab_size=8, max_position_embeddings=1024, tie_word_embeddings=False)
    config = LlamaRecConfig(backbone_config=backbone, num_items=num_items, use_lora=shape == "7b")
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaRecForCodeGeneration(config)
    model = model.to(dtype).eval()
    # Random unique codes: 3 levels of 256 plus a suffix, as an RQ-VAE would give.
    gen = torch.Generator().manual_seed(seed)
    prefix = torch.randint(0, 256, (num_items, 3), generator=gen)
    from hf_genrec.models.rqvae import assign_suffix

    model.set_item_codes(assign_suffix(prefix, 256))
    return model


@torch.no_grad()
def design_generate(model, input_ids, attention_mask, num_beams: int, k: int, chunk_size: int = 4) -> torch.Tensor:
    """The design document's beam search: full prefix re-run per level, no cache, no trie. ``[B, k, L]`` codes."""
    bsz, cfg = input_ids.shape[0], model.config
    positions = model.position_ids_from_mask(attention_mask)
    embeds = model.embed_codes(input_ids, positions % cfg.code_length, attention_mask).repeat_interleave(num_beams, 0)
    mask = attention_mask.repeat_interleave(num_beams, 0)
    scores = torch.zeros(bsz, num_beams, device=input_ids.device)
    scores[:, 1:] = -1e9
    scores = scores.view(-1)
    offset = torch.arange(bsz, device=input_ids.device).repeat_interleave(num_beams) * num_beams
    codes = []
    for level in range(cfg.code_length):
        last = []
        for s in range(0, embeds.shape[0], chunk_size):
            m = mask[s : s + chunk_size]
            h = model.backbone(
                inputs_embeds=embeds[s : s + chunk_size],
                attention_mask=m,
                position_ids=model.position_ids_from_mask(m),
                use_cache=False,
            ).last_hidden_state
            last.append(h[:, -1])
        logp = F.log_softmax(model.level_logits(torch.cat(last), level).float(), -1)
        vocab = logp.shape[-1]
        top, idx = (logp + scores.unsqueeze(-1)).view(bsz, -1).topk(num_beams, dim=-1)
        parent, code = idx // vocab, idx % vocab
        scores = top.view(-1)
        beam = (parent + offset.view(bsz, num_beams)).view(-1)
        codes = [c.view(-1)[beam].view(bsz, num_beams) for c in codes] + [code]
        new = model.embed_codes(code.view(-1, 1), torch.full_like(code.view(-1, 1), level))
        embeds = torch.cat([embeds[beam], new], 1)
        mask = torch.cat([mask[beam], torch.ones_like(mask[:, :1])], 1)
    return torch.stack(codes, -1)[:, :k]


@torch.no_grad()
def copied_cache_generate(model, input_ids, attention_mask, num_beams: int, k: int) -> torch.Tensor:
    """Beam search with a plain KV cache: prefill once, then copy the cache for every beam
    (``batch_repeat_interleave``) and reorder it after each step. Same trie as ours, so its
    ranking must equal ours; only the memory layout differs. ``[B, k]`` item ids."""
    from transformers import DynamicCache

    cfg, trie = model.config, model.trie
    bsz = input_ids.shape[0]
    kw = model._cache_kwarg()
    pos = model.position_ids_from_mask(attention_mask)
    cache = DynamicCache(config=model.backbone.config)
    h = model.backbone(
        inputs_embeds=model.embed_codes(input_ids, pos % cfg.code_length, attention_mask),
        attention_mask=attention_mask,
        position_ids=pos,
        use_cache=True,
        **{kw: cache},
    ).last_hidden_state
    logp = torch.log_softmax(model.level_logits(h[:, -1], 0).float(), -1)
    child = trie.children[0][0].expand(bsz, -1)
    scores, codes = torch.where(child >= 0, logp, torch.tensor(float("-inf"))).topk(num_beams, 1)
    nodes = child.gather(1, codes)
    cache.batch_repeat_interleave(num_beams)
    mask = attention_mask.repeat_interleave(num_beams, 0)
    next_pos = pos[:, -1:].repeat_interleave(num_beams, 0) + 1
    offset = torch.arange(bsz, device=input_ids.device).unsqueeze(1) * num_beams
    for level in range(1, cfg.code_length):
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        tok = model.embed_codes(codes.reshape(-1, 1), torch.full_like(codes.reshape(-1, 1), level - 1))
        h = model.backbone(
            inputs_embeds=tok, attention_mask=mask, position_ids=next_pos, use_cache=True, **{kw: cache}
        ).last_hidden_state[:, -1]
        logp = torch.log_softmax(model.level_logits(h, level).float(), -1).view(bsz, num_beams, -1)
        child = trie.children[level][nodes.clamp_min(0)]
        cand = torch.where((child >= 0) & (nodes >= 0).unsqueeze(-1), scores.unsqueeze(-1) + logp, torch.tensor(float("-inf")))
        scores, flat = cand.flatten(1).topk(num_beams, 1)
        parent, codes = flat // cand.shape[-1], flat % cand.shape[-1]
        nodes = child.flatten(1).gather(1, flat)
        beam_idx = (parent + offset).reshape(-1)
        cache.reorder_cache(beam_idx)
        mask, next_pos = mask[beam_idx], next_pos + 1
    return torch.where(torch.isfinite(scores), nodes, torch.full_like(nodes, -1))[:, :k]


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process RSS (KiB -> GiB)


def speed(users: int, secs: float, mem: float) -> dict:
    return {"users": users, "users_per_s": users / secs, "ms_per_user": 1000 * secs / users, "peak_memory_gb": mem}


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start, peak_memory_gb(device)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="bfloat16 on cuda, float32 on cpu by default")
    p.add_argument("--num_items", type=int, default=12101)
    p.add_argument("--history", type=int, default=50, help="history items (x4 tokens)")
    p.add_argument("--num_users", type=int, default=64)
    p.add_argument("--design_users", type=int, default=8, help="users for the (slow) design version")
    p.add_argument("--num_beams", type=int, default=20)
    p.add_argument("--top_k", type=int, default=10)
    p.add_argument("--chunk_size", type=int, default=64, help="users per generate() chunk (ours)")
    p.add_argument("--skip_design", action="store_true")
    p.add_argument("--json", default=None, help="also write the figures here")
    a = p.parse_args(argv)
    dtype = getattr(torch, a.dtype) if a.dtype else (torch.bfloat16 if a.device.startswith("cuda") else torch.float32)
    model = build(a.shape, a.num_items, a.device, dtype)
    gen = torch.Generator().manual_seed(1)
    items = torch.randint(1, a.num_items + 1, (a.num_users, a.history), generator=gen)
    input_ids = model.item_codes[items.to(a.device)].flatten(1)
    mask = torch.ones_like(input_ids)
    device_name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    report = {
        "shape": a.shape,
        "device": device_name,
        "dtype": str(dtype),
        "history_tokens": input_ids.shape[1],
        "num_beams": a.num_beams,
        "top_k": a.top_k,
        "num_items": a.num_items,
    }

    warm = min(4, a.num_users)
    model.generate(input_ids[:warm], mask[:warm], num_beams=a.num_beams, num_return_sequences=a.top_k)
    out, secs, mem = timed(
        lambda: model.generate(input_ids, mask, num_beams=a.num_beams, num_return_sequences=a.top_k, chunk_size=a.chunk_size),
        a.device,
    )
    report["ours"] = speed(a.num_users, secs, mem) | {"valid_items": float((out.item_ids > 0).float().mean())}
    ids, secs, mem = timed(
        lambda: torch.cat(
            [
                copied_cache_generate(model, input_ids[i : i + a.chunk_size], mask[i : i + a.chunk_size], a.num_beams, a.top_k)
                for i in range(0, a.num_users, a.chunk_size)
            ]
        ),
        a.device,
    )
    report["copied_cache"] = speed(a.num_users, secs, mem) | {"same_ranking_as_ours": bool(torch.equal(ids, out.item_ids))}
    if not a.skip_design:
        n = min(a.design_users, a.num_users)
        codes, secs, mem = timed(lambda: design_generate(model, input_ids[:n], mask[:n], a.num_beams, a.top_k), a.device)
        table = {tuple(c): i for i, c in enumerate(model.item_codes.tolist())}
        valid = sum(tuple(c) in table for c in codes.reshape(-1, codes.shape[-1]).tolist()) / codes[..., 0].numel()
        report["design"] = speed(n, secs, mem) | {"valid_items": valid}
        report["speedup"] = report["ours"]["users_per_s"] / report["design"]["users_per_s"]
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
