from .configuration_sasrec import SASRecConfig
from .modeling_sasrec import SASRecModel, SASRecOutput

__all__ = ["SASRecConfig", "SASRecModel", "SASRecOutput"]
