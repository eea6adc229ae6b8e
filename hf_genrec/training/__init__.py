"""Training: the generic recommender Trainer, ETEGRec's alternating training on it, RQ-VAE pre-training."""

from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE, ETEGRecTrainingArguments
from .callbacks import AlternatingTrainingCallback, TimeBudgetCallback
from .etegrec_trainer import ETEGRecTrainer
from .joint import ETEGRecJointModel, JointOutput
from .losses import first_occurrence, psa_loss, sia_loss
from .recommender_trainer import RecommenderTrainer, RecommenderTrainingArguments
from .rqvae_pretraining import pretrain_rqvae

__all__ = [
    "RECOMMENDER_PHASE",
    "TOKENIZER_PHASE",
    "AlternatingTrainingCallback",
    "ETEGRecJointModel",
    "ETEGRecTrainer",
    "ETEGRecTrainingArguments",
    "JointOutput",
    "RecommenderTrainer",
    "RecommenderTrainingArguments",
    "TimeBudgetCallback",
    "first_occurrence",
    "pretrain_rqvae",
    "psa_loss",
    "sia_loss",
]
