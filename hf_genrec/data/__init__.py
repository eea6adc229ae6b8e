"""Interaction data: readers, leave-one-out splits, item id mapping, a generated default dataset."""

from ..utils import ITEM_MAP_FILE, PAD_ITEM, ItemIdMap, UnknownItemError
from .cold_start import ColdStartSplit, cold_start_split
from .collator import DataCollatorForRecommendation
from .errors import InteractionFormatError
from .formats import FORMATS, DataFormat, dataset_file_in, detect_format, load_interactions, read_interactions
from .item_text import (
    ItemTextFormatError,
    align_item_texts,
    find_item_text_file,
    format_item_fields,
    read_item_texts,
)
from .readers import SequenceData, read_etegrec_jsonl, read_hllm_csv, read_json_sequences, read_recbole_inter
from .splits import (
    GenRecDatasetDict,
    LeaveOneOutRows,
    leave_one_out,
    load_genrec_dataset,
    train_sequences,
    whole_sequence_rows,
)
from .synthetic import make_synthetic_item_texts, make_synthetic_sequences
from .table import PreparedDatasetError, SequenceTable

__all__ = [
    "ColdStartSplit",
    "DataFormat",
    "FORMATS",
    "detect_format",
    "read_interactions",
    "DataCollatorForRecommendation",
    "ITEM_MAP_FILE",
    "PAD_ITEM",
    "GenRecDatasetDict",
    "LeaveOneOutRows",
    "PreparedDatasetError",
    "SequenceTable",
    "InteractionFormatError",
    "ItemTextFormatError",
    "align_item_texts",
    "cold_start_split",
    "find_item_text_file",
    "format_item_fields",
    "read_item_texts",
    "read_hllm_csv",
    "ItemIdMap",
    "SequenceData",
    "UnknownItemError",
    "dataset_file_in",
    "leave_one_out",
    "load_genrec_dataset",
    "load_interactions",
    "make_synthetic_item_texts",
    "make_synthetic_sequences",
    "read_etegrec_jsonl",
    "read_json_sequences",
    "read_recbole_inter",
    "train_sequences",
    "whole_sequence_rows",
]
