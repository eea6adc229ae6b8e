"""Leave-one-out splitting (TIGER / ETEGRec protocol) into a ``datasets.DatasetDict``."""

from __future__ import annotations

import logging
import os

from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_from_disk

from ..utils.item_map import ItemIdMap
from .readers import SequenceData

logger = logging.getLogger(__name__)

FEATURES = Features(
    {"user": Value("string"), "history": Sequence(Value("int32")), "target": Value("int32"), "length": Value("int32")}
)
#: with timestamps: the time (seconds) of each history item, for time-aware models
FEATURES_WITH_TIME = Features({**FEATURES, "history_timestamps": Sequence(Value("float64"))})


class GenRecDatasetDict(DatasetDict):
    """A ``DatasetDict`` (splits ``train`` / ``validation`` / ``test``; columns ``user``,
    ``history`` (dense item ids, oldest first), ``target``, ``length`` (history items, for the
    Trainer's group-by-length sampling) and, when the source had timestamps, ``history_timestamps``)
    that carries its :class:`ItemIdMap`.

    ``save_to_disk`` writes the mapping beside the splits; :func:`load_genrec_dataset` reads both.
    """

    item_map: ItemIdMap
    num_dropped_users: int = 0

    def save_to_disk(self, dataset_dict_path: str, **kwargs) -> None:
        super().save_to_disk(dataset_dict_path, **kwargs)
        self.item_map.save(dataset_dict_path)

    @property
    def num_items(self) -> int:
        return self.item_map.num_items


def load_genrec_dataset(path: str) -> GenRecDatasetDict:
    """Load what :meth:`GenRecDatasetDict.save_to_disk` wrote."""
    dsd = GenRecDatasetDict(load_from_disk(path))
    dsd.item_map = ItemIdMap.load(path)
    return dsd


def leave_one_out(
    sequences: dict[str, list] | SequenceData,
    max_history: int = 50,
    min_length: int = 3,
    on_short: str = "error",
) -> GenRecDatasetDict:
    """Split per-user sequences leave-one-out.

    For a user with items ``s[0..n-1]``: test target ``s[n-1]`` (history ``s[:n-1]``), validation
    target ``s[n-2]`` (history ``s[:n-2]``), and one training row per prefix of ``s[:n-2]``
    (target ``s[t]``, history ``s[:t]``, ``1 <= t < n-2``). Histories keep their last
    ``max_history`` items. Item ids are remapped to ``1..N`` (0 = padding).

    Args:
        sequences: user -> time-ordered item ids, or a :class:`SequenceData`.
        max_history: keep at most this many most recent history items.
        min_length: users need this many interactions (3: one train target needs 3 + 1; a
            user with exactly 3 gives a validation and a test row but no training row).
        on_short: ``"error"`` raises on a user shorter than ``min_length``; ``"drop"`` drops
            them and logs how many (also stored as ``num_dropped_users``).
    """
    timestamps = None
    if isinstance(sequences, SequenceData):
        sequences, timestamps = sequences.sequences, sequences.timestamps
    if not sequences:
        raise ValueError("no sequences to split")
    if min_length < 3:
        raise ValueError("min_length must be at least 3 (a validation and a test target need a history)")
    if on_short not in ("error", "drop"):
        raise ValueError(f"on_short must be 'error' or 'drop', got {on_short!r}")
    short = [u for u, s in sequences.items() if len(s) < min_length]
    if short and on_short == "error":
        raise ValueError(
            f"{len(short)} user(s) have fewer than {min_length} interactions (e.g. user {short[0]!r} with "
            f"{len(sequences[short[0]])}); pass on_short='drop' to drop them"
        )
    if short:
        logger.warning("leave_one_out: dropped %d user(s) with fewer than %d interactions", len(short), min_length)
    kept = {u: s for u, s in sequences.items() if len(s) >= min_length}
    if not kept:
        raise ValueError("every user was dropped as too short; nothing to split")

    item_map = ItemIdMap(i for s in kept.values() for i in s)
    columns = ["user", "history", "target", "length"] + (["history_timestamps"] if timestamps else [])
    rows: dict[str, dict[str, list]] = {k: {c: [] for c in columns} for k in ("train", "validation", "test")}

    def add(split: str, user: str, history: list[int], target: int, times: list[float] | None) -> None:
        rows[split]["user"].append(user)
        rows[split]["history"].append(history[-max_history:])
        rows[split]["target"].append(target)
        rows[split]["length"].append(min(len(history), max_history))
        if times is not None:
            rows[split]["history_timestamps"].append(times[-max_history:])

    for user, seq in kept.items():
        dense = [item_map.to_dense(i) for i in seq]
        times = [float(t) for t in timestamps[user]] if timestamps else None
        if times is not None and len(times) != len(dense):
            raise ValueError(f"user {user!r}: {len(dense)} items but {len(times)} timestamps")
        n = len(dense)
        for t in range(1, n - 2):
            add("train", user, dense[:t], dense[t], times[:t] if times else None)
        add("validation", user, dense[: n - 2], dense[n - 2], times[: n - 2] if times else None)
        add("test", user, dense[: n - 1], dense[n - 1], times[: n - 1] if times else None)

    features = FEATURES_WITH_TIME if timestamps else FEATURES
    dsd = GenRecDatasetDict({k: Dataset.from_dict(v, features=features) for k, v in rows.items()})
    dsd.item_map = item_map
    dsd.num_dropped_users = len(short)
    return dsd


def train_sequences(dsd: DatasetDict) -> list[list[int]]:
    """Each user's training sequence (everything before the validation target), dense ids.

    Recovered from the validation split: its history is exactly the training part (up to
    ``max_history``). Used to train sequence models on whole sequences instead of prefixes.
    """
    return [list(h) for h in dsd["validation"]["history"]]


def whole_sequence_rows(dsd: DatasetDict, max_history: int) -> Dataset:
    """Training rows for whole-sequence training (``train_on_all_positions``): each user's training
    sequence as windows of at most ``max_history + 1`` items, ``history`` = the window without its
    last item, ``target`` = that item, ``length`` = the history length.

    A sequence longer than a window is cut into windows that end ``max_history`` items apart, so
    every transition of the sequence is trained exactly once per epoch (the first target of each
    window reads only the items of its window). Timestamps follow the items when the split has them.
    """
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    seqs = train_sequences(dsd)
    times = dsd["validation"]["history_timestamps"] if "history_timestamps" in dsd["validation"].column_names else None
    rows: dict[str, list] = {"history": [], "target": [], "length": []}
    if times is not None:
        rows["history_timestamps"] = []
    for i, seq in enumerate(seqs):
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_history - 1)
            rows["history"].append(seq[start : end - 1])
            rows["target"].append(seq[end - 1])
            rows["length"].append(end - 1 - start)
            if times is not None:
                rows["history_timestamps"].append(list(times[i])[start : end - 1])
            end -= max_history
    if not rows["target"]:
        raise ValueError("no user has a training sequence of two items or more")
    return Dataset.from_dict(rows)


def dataset_file_in(directory: str) -> str:
    """The interaction file inside a dataset folder (first of ``*.inter.json``, ``*.json``,
    ``*.inter``, ``*.jsonl``, ``ratings.dat``, HLLM's ``<name>.csv``)."""
    if os.path.isfile(directory):
        return directory
    names = sorted(os.listdir(directory))
    for suffix in (".inter.json", ".json", ".inter", ".jsonl", "ratings.dat", ".csv"):
        for n in names:
            if n.endswith(suffix) and n not in ("item_map.json", "item_text.json"):
                return os.path.join(directory, n)
    raise FileNotFoundError(f"no interaction file (*.inter.json, *.json, *.inter, *.jsonl, ratings.dat) in {directory}")
