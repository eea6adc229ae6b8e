from .configuration_itemid import ItemIDLlamaConfig
from .hierarchical_softmax import HierarchicalSoftmax, balanced_assignment
from .modeling_itemid import ItemIDLlamaForRecommendation, ItemIDLlamaOutput, ItemIDLlamaPreTrainedModel

__all__ = [
    "HierarchicalSoftmax",
    "ItemIDLlamaConfig",
    "ItemIDLlamaForRecommendation",
    "ItemIDLlamaOutput",
    "ItemIDLlamaPreTrainedModel",
    "balanced_assignment",
]
