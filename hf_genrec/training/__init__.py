"""Training: the generic recommender Trainer, ETEGRec's alternating training on it, RQ-VAE pre-training."""

from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE, ETEGRecTrainingArguments
from .callbacks import AlternatingTrainingCallback, TimeBudgetCallback
from .etegrec_trainer import ETEGRecTrainer
from .joint import ETEGRecJointModel, JointOutput
from .losses import first_occurrence, psa_loss, sia_loss
from .recommender_trainer import RecommenderTrainer, RecommenderTrainingArguments
from .rqvae_pretraining import pretrain_rqvae
from .stages import STAGE_DONE_FILE, STAGE_FINAL_DIR, run_stage

__all__ = [
    "RECOMMENDER_PHASE",
    "STAGE_DONE_FILE",
    "STAGE_FINAL_DIR",
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
    "run_stage",
    "psa_loss",
    "sia_loss",
]
