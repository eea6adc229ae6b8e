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

    ``item_nodes[l]`` ``[N + 1]`` is the node each item passes at depth ``l + 1`` (-1 for rows
    without codes; at the last depth the item id itself), and ``node_sizes[l]`` the number of
    items under each such node, so a search can tell a prefix whose every item is excluded.
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
        self.item_nodes: list[torch.Tensor] = []
        self.node_sizes: list[torch.Tensor] = []
        num_rows = item_codes.shape[0]
        node = torch.zeros(codes.shape[0], dtype=torch.long)  # every item starts at the root
        num_nodes = 1
        for level in range(self.code_length):
            if level == self.code_length - 1:
                nxt, num_next = item_ids.cpu().long(), num_rows
            else:
                _, nxt = torch.unique(codes[:, : level + 1], dim=0, return_inverse=True)
                num_next = int(nxt.max()) + 1
            table = torch.full((num_nodes, vocab), -1, dtype=torch.long)
            table[node, codes[:, level]] = nxt
            self.children.append(table)
            self.item_nodes.append(torch.full((num_rows,), -1, dtype=torch.long).index_put_((item_ids.cpu(),), nxt))
            self.node_sizes.append(torch.bincount(nxt, minlength=num_next))
            node, num_nodes = nxt, num_next

    def to(self, device: torch.device | str) -> CodeTrie:
        self.children = [c.to(device) for c in self.children]
        self.item_nodes = [c.to(device) for c in self.item_nodes]
        self.node_sizes = [c.to(device) for c in self.node_sizes]
        return self

    def excluded_counts(self, exclude_items: torch.Tensor) -> list[torch.Tensor]:
        """Per depth, how many of each user's excluded items lie under each node: ``L`` tensors
        ``[B, nodes at depth l + 1]``, from ``exclude_items`` ``[B, E]`` (0 = padding; repeats count once)."""
        ids = exclude_items.long().sort(1).values
        ids[:, 1:] = ids[:, 1:].masked_fill(ids[:, 1:] == ids[:, :-1], 0)  # count each item once
        counts = []
        for nodes_of, sizes in zip(self.item_nodes, self.node_sizes):
            nodes = nodes_of[ids]  # [B, E]; -1 for padding / items without codes
            table = torch.zeros(ids.shape[0], sizes.shape[0] + 1, dtype=torch.long, device=ids.device)
            table.scatter_add_(1, nodes + 1, (nodes >= 0).long())  # column 0 collects the -1s
            counts.append(table[:, 1:])
        return counts

    def has_items_left(self, level: int, child: torch.Tensor, counts: list[torch.Tensor] | None) -> torch.Tensor:
        """Whether each node ``child`` ``[B, ...]`` (-1 = none) of depth ``level + 1`` still holds an item
        that is not excluded, given :meth:`excluded_counts` (None: no exclusion)."""
        real = child >= 0
        if counts is None:
            return real
        node = child.clamp_min(0)
        left = self.node_sizes[level][node] - counts[level].gather(1, node.flatten(1)).view_as(node)
        return real & (left > 0)
