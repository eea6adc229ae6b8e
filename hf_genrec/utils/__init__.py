"""Shared leaves: padding, errors, the item id map and tensor helpers.

Everything here imports only torch and the standard library, so models, data, training and
serving can all use it without importing one another.
"""

from .errors import EmptyHistoryError, UnknownItemError
from .item_map import ITEM_MAP_FILE, PAD_ITEM, ItemIdMap
from .padding import left_pad
from .tensors import is_sharded

__all__ = [
    "ITEM_MAP_FILE",
    "PAD_ITEM",
    "EmptyHistoryError",
    "ItemIdMap",
    "UnknownItemError",
    "is_sharded",
    "left_pad",
]
