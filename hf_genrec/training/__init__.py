"""Training: alternating ETEGRec training on the HF Trainer, and RQ-VAE pre-training."""

from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE, GenRecTrainingArguments
from .callbacks import AlternatingTrainingCallback
from .joint import ETEGRecJointModel, JointOutput
from .losses import first_occurrence, psa_loss, sia_loss
from .rqvae_pretraining import pretrain_rqvae
from .trainer import GenRecTrainer, compute_ranking_metrics

__all__ = [
    "RECOMMENDER_PHASE",
    "TOKENIZER_PHASE",
    "AlternatingTrainingCallback",
    "ETEGRecJointModel",
    "GenRecTrainer",
    "GenRecTrainingArguments",
    "JointOutput",
    "compute_ranking_metrics",
    "first_occurrence",
    "pretrain_rqvae",
    "psa_loss",
    "sia_loss",
]
