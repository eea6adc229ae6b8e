"""hf_genrec: LLM-backed generative recommendation on the HuggingFace stack.

Importing the package registers every model family with the Auto classes, so
``AutoModel.from_pretrained(path)`` works with no ``trust_remote_code``.
"""

import logging as _logging

# bitsandbytes' CPU backend warns at import, on CPUs with AVX512-BF16, that an optional kernel package
# is missing (nothing here uses its 4-bit CPU kernels). peft imports bitsandbytes, so without this
# `import hf_genrec` would print that line, and every command-line mistake would take two lines.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
# Newer bitsandbytes look those kernels up through `kernels`, which warns in offline mode that it skips
# a trust check for a kernel nothing here loads.
_logging.getLogger("kernels").setLevel(_logging.ERROR)

import importlib as _importlib

from transformers import AutoConfig, AutoModel

from .data import DataCollatorForRecommendation
from .metrics import ranking_metrics
from .models.hllm import HLLMConfig, HLLMForRecommendation
from .models.itemid import HierarchicalSoftmax, ItemIDLlamaConfig, ItemIDLlamaForRecommendation
from .models.llamarec import CodeTrie, DataCollatorForCodeSeq, LlamaRecConfig, LlamaRecForCodeGeneration, LlamaRecOutput
from .models.recommender import RecommendationOutput, RecommenderMixin
from .models.rqvae import CodebookCollisionError, RQVAEConfig, RQVAEModel, RQVAEOutput
from .models.sasrec import SASRecConfig, SASRecModel
from .utils import EmptyHistoryError, ItemIdMap, UnknownItemError

__version__ = "0.2.0"

for _config, _model in (
    (RQVAEConfig, RQVAEModel),
    (LlamaRecConfig, LlamaRecForCodeGeneration),
    (SASRecConfig, SASRecModel),
    (ItemIDLlamaConfig, ItemIDLlamaForRecommendation),
    (HLLMConfig, HLLMForRecommendation),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)

# The trainers import `transformers.Trainer`, and with it peft and bitsandbytes: seconds that loading a
# model to recommend or serve does not need. They are imported on first use (PEP 562).
_LAZY = {
    name: ".training"
    for name in (
        "AlternatingTrainingCallback",
        "ETEGRecTrainer",
        "ETEGRecTrainingArguments",
        "RecommenderTrainer",
        "RecommenderTrainingArguments",
    )
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AlternatingTrainingCallback",
    "CodeTrie",
    "CodebookCollisionError",
    "DataCollatorForCodeSeq",
    "DataCollatorForRecommendation",
    "ETEGRecTrainer",
    "ETEGRecTrainingArguments",
    "EmptyHistoryError",
    "HLLMConfig",
    "HLLMForRecommendation",
    "HierarchicalSoftmax",
    "ItemIDLlamaConfig",
    "ItemIDLlamaForRecommendation",
    "ItemIdMap",
    "LlamaRecConfig",
    "LlamaRecForCodeGeneration",
    "LlamaRecOutput",
    "RQVAEConfig",
    "RQVAEModel",
    "RQVAEOutput",
    "RecommendationOutput",
    "RecommenderMixin",
    "RecommenderTrainer",
    "RecommenderTrainingArguments",
    "SASRecConfig",
    "SASRecModel",
    "UnknownItemError",
    "ranking_metrics",
]
