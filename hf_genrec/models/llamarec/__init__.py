from .collator import DataCollatorForCodeSeq
from .configuration_llamarec import LlamaRecConfig
from .modeling_llamarec import LlamaRecForCodeGeneration, LlamaRecOutput, LlamaRecPreTrainedModel
from .trie import CodeTrie

__all__ = [
    "CodeTrie",
    "DataCollatorForCodeSeq",
    "LlamaRecConfig",
    "LlamaRecForCodeGeneration",
    "LlamaRecOutput",
    "LlamaRecPreTrainedModel",
]
