from .configuration_hllm import DEFAULT_ITEM_PROMPT, HLLMConfig
from .modeling_hllm import HLLMForRecommendation, HLLMOutput, HLLMPreTrainedModel
from .tokenization_hllm import tokenize_item_texts, train_word_level_tokenizer

__all__ = [
    "DEFAULT_ITEM_PROMPT",
    "HLLMConfig",
    "HLLMForRecommendation",
    "HLLMOutput",
    "HLLMPreTrainedModel",
    "tokenize_item_texts",
    "train_word_level_tokenizer",
]
