"""Tokenization of the HLLM item LLM's input: item text -> token ids, stored with the model so a
reloaded HLLM can re-embed its catalogue without the original text files (reading item text files is
``hf_genrec.data.item_text``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def tokenize_item_texts(
    texts: Sequence[str], tokenizer, prompt: str, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``prompt + text`` for every item, left padded.

    Args:
        texts: ``N`` strings, text i belongs to dense item i + 1 (``""`` for an item without text).
        tokenizer: the item LLM's tokenizer (a ``transformers`` tokenizer).
        prompt: put before every text (the official ``item_prompt``).
        max_length: tokens kept per item (the head of the text, special tokens kept).
    Returns:
        ``input_ids`` ``[N + 1, max_length]`` (row 0 = the padding item, all 0) left padded with 0, and
        ``lengths`` ``[N + 1]`` (real tokens per row, >= 1 for every item).

    An item with empty text still gets the prompt; if the tokenizer returns no token at all (no
    prompt, no special tokens) a single fallback token (unk / eos / pad) stands in, so pooling
    never divides by zero (a zero-length item is a known source of NaN embeddings).
    """
    fallback = next((t for t in (tokenizer.unk_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None), 0)
    encoded = tokenizer(
        [prompt + (t or "") for t in texts], add_special_tokens=True, truncation=True, max_length=max_length
    )["input_ids"]
    encoded = [ids if len(ids) else [fallback] for ids in encoded]
    width = max_length  # fixed, so the saved buffer's shape is known from the config
    input_ids = torch.zeros(len(encoded) + 1, width, dtype=torch.long)
    lengths = torch.zeros(len(encoded) + 1, dtype=torch.long)
    for row, ids in enumerate(encoded, start=1):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        lengths[row] = len(ids)
    return input_ids, lengths


def train_word_level_tokenizer(texts: Sequence[str], prompt: str = ""):
    """A word-level ``PreTrainedTokenizerFast`` over ``texts`` (and the prompt), for a random-init item
    LLM when no pretrained tokenizer is wanted (the embedded default; offline). Id 0 = ``[PAD]``,
    1 = ``[UNK]``; words and punctuation runs are tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    splitter = pre_tokenizers.Whitespace()
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for text in [prompt, *texts]:
        for word, _ in splitter.pre_tokenize_str(text or ""):
            vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = splitter
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]")
