from .collisions import CodebookCollisionError, assign_suffix, collision_rate
from .configuration_rqvae import RQVAEConfig
from .modeling_rqvae import QuantizerOutput, RQVAEModel, RQVAEOutput

__all__ = [
    "CodebookCollisionError",
    "QuantizerOutput",
    "RQVAEConfig",
    "RQVAEModel",
    "RQVAEOutput",
    "assign_suffix",
    "collision_rate",
]
