from .configuration_hllm import DEFAULT_ITEM_PROMPT, HLLMConfig
from .item_text import tokenize_item_texts, train_word_level_tokenizer
from .modeling_hllm import HLLMForRecommendation, HLLMOutput, HLLMPreTrainedModel

__all__ = [
    "DEFAULT_ITEM_PROMPT",
    "HLLMConfig",
    "HLLMForRecommendation",
    "HLLMOutput",
    "HLLMPreTrainedModel",
    "tokenize_item_texts",
    "train_word_level_tokenizer",
]
