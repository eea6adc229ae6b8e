"""A prefix trie over item code sequences, stored as dense per-level child tables so that
beam search can look up valid continuations for every beam with one gather."""

from __future__ import annotations

import torch


class CodeTrie:
    """Trie of the code sequences of real items.

    ``children[l]`` is ``[num_nodes_l, vocab]``: the node reached from node ``n`` of level
    ``l`` by code ``c`` is ``children[l][n, c]``, or -1 when no item continues that way. Level
    0 has the single root node 0; at the last level the "node" is the item id itself.
    Memory: ``vocab * (1 + distinct prefixes of every length)`` int64 entries, at most
    ``vocab * (1 + (L-1) * N)``.
    """

    def __init__(self, item_codes: torch.Tensor, vocab: int):
        """``item_codes``: ``[N + 1, L]`` (row = item id; rows with a code < 0, e.g. padding row 0, are skipped)."""
        valid = (item_codes >= 0).all(1)
        item_ids = torch.nonzero(valid).squeeze(1)
        if item_ids.numel() == 0:
            raise ValueError("the item code table has no valid rows; assign item codes first")
        codes = item_codes[item_ids].long().cpu()
        if int(codes.max()) >= vocab:
            raise ValueError(f"item codes reach {int(codes.max())} but the code vocabulary has {vocab} entries")
        if torch.unique(codes, dim=0).shape[0] != codes.shape[0]:
            raise ValueError("two items share the same code sequence; codes must be unique (add the suffix)")
        self.code_length = codes.shape[1]
        self.vocab = vocab
        self.children: list[torch.Tensor] = []
        node = torch.zeros(codes.shape[0], dtype=torch.long)  # every item starts at the root
        num_nodes = 1
        for level in range(self.code_length):
            if level == self.code_length - 1:
                nxt, num_next = item_ids.cpu().long(), None
            else:
                _, nxt = torch.unique(codes[:, : level + 1], dim=0, return_inverse=True)
                num_next = int(nxt.max()) + 1
            table = torch.full((num_nodes, vocab), -1, dtype=torch.long)
            table[node, codes[:, level]] = nxt
            self.children.append(table)
            node, num_nodes = nxt, num_next

    def to(self, device: torch.device | str) -> CodeTrie:
        self.children = [c.to(device) for c in self.children]
        return self
