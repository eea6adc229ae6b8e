"""TrainingArguments of ETEGRec's alternating training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..utils.errors import InputError
from .recommender_trainer import RecommenderTrainingArguments

TOKENIZER_PHASE = "tokenizer"
RECOMMENDER_PHASE = "recommender"
CODEBOOK_SYNC_MODES = ("none", "tokenizer_to_recommender", "both")


@dataclass
class ETEGRecTrainingArguments(RecommenderTrainingArguments):
    """:class:`RecommenderTrainingArguments` plus the ETEGRec schedule and loss weights (defaults from the paper).

    Each cycle of ``cycle`` epochs starts with one tokenizer epoch (RQ-VAE trains, recommender
    frozen), then ``cycle - 1`` recommender epochs. ``alternating=False`` trains only the
    recommender with the tokenizer frozen (the final fine-tuning stage, or the ablation).
    SIA and PSA weights are 0 before ``warm_epoch``.

    Each side has its own learning-rate schedule that advances only in its own phase (the official
    code's two optimizers and two schedulers): the recommender's over its recommender steps (warm-up
    ``warmup_steps``), the tokenizer's over its tokenizer steps (warm-up ``tokenizer_warmup_steps``).
    ``codebook_sync`` decides what the recommender's codebook copy does (see its help).
    """

    alternating: bool = field(default=True, metadata={"help": "alternate tokenizer / recommender epochs"})
    cycle: int = field(default=2, metadata={"help": "epochs per cycle: 1 tokenizer epoch + (cycle-1) recommender epochs"})
    warm_epoch: int = field(
        default=10,
        metadata={"help": "SIA/PSA weights are 0 before this epoch (official 10: alignment waits for a trained recommender)"},
    )
    codebook_sync: str = field(
        default="none",
        metadata={
            "help": "none (default; docs/benchmark-notes.md compares the modes): the recommender's code embeddings are its "
            "own after the initial copy (official ETEGRec); "
            "tokenizer_to_recommender: refreshed from the RQ-VAE after each tokenizer epoch, never written back; "
            "both: also written back into the RQ-VAE after each recommender epoch (then codes are re-assigned, so "
            "the tokenizer always reproduces the model's code table)"
        },
    )
    recode_margin: float = field(
        default=0.0,
        metadata={
            "help": "re-coding hysteresis (not in the official code): at a re-assignment an item keeps its code at a "
            "level while that code's squared distance is within (1 + margin) x the nearest one's. 0 (default, "
            "official): always the nearest code, so the saved tokenizer alone reproduces the model's code table; "
            "> 0: the model's table is the reference (its item_codes buffer). On Beauty one tokenizer epoch of "
            "plain VQ training re-codes 27.5%% of item prefixes; margin 0.05 -> 3.4%% (benchmarks/churn_probe.py)"
        },
    )
    tokenizer_learning_rate: float = field(default=1e-4, metadata={"help": "AdamW lr of the RQ-VAE"})
    tokenizer_weight_decay: float = field(default=0.05, metadata={"help": "official ETEGRec: 0.05 on both sides"})
    tokenizer_warmup_steps: float | None = field(
        default=None,
        metadata={
            "help": "warm-up of the tokenizer's own schedule, in its own steps (< 1: a ratio of them); default: the "
            "same share of its steps as warmup_steps is of the recommender's"
        },
    )
    codebook_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "lr of the recommender's codebook copy. Default: tokenizer_learning_rate with codebook_sync=both "
            "(the copy goes back into the RQ-VAE; at the recommender's lr it drifted away from the encoder's latents "
            "and the re-assigned codes collapsed: collision rate 0.12 -> 0.72 measured), else learning_rate (the copy "
            "is the recommender's own code embedding table)"
        },
    )
    code_loss_weight: float = field(default=1.0, metadata={"help": "code CE, recommender phase"})
    rec_sia_weight: float = field(default=1e-4, metadata={"help": "SIA, recommender phase"})
    rec_psa_weight: float = field(default=3e-4, metadata={"help": "PSA, recommender phase"})
    vq_loss_weight: float = field(default=1.0, metadata={"help": "RQ-VAE loss, tokenizer phase"})
    tok_sia_weight: float = field(default=1e-4, metadata={"help": "SIA, tokenizer phase"})
    tok_psa_weight: float = field(default=3e-4, metadata={"help": "PSA, tokenizer phase"})
    psa_temperature: float = field(default=0.07, metadata={"help": "InfoNCE temperature of PSA"})
    sia_temperature: float = field(default=1.0, metadata={"help": "softmax temperature of the SIA code distributions"})
    eval_num_beams: int = field(default=20, metadata={"help": "beams for validation/test generate()"})
    eval_chunk_size: int = field(default=64, metadata={"help": "users per generate() chunk during evaluation"})
    eval_after_tokenizer_epochs: bool = field(
        default=False,
        metadata={
            "help": "also evaluate/save after tokenizer epochs. Off by default, as in ETEGRec: right after a "
            "tokenizer epoch the codes were just re-assigned and the recommender has not adapted yet, so "
            "those scores would only feed noise to early stopping and best-checkpoint selection"
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.cycle < 2 and self.alternating:
            raise InputError("cycle must be >= 2 (one tokenizer epoch and at least one recommender epoch)")
        if self.recode_margin < 0:
            raise InputError(f"recode_margin must be >= 0, got {self.recode_margin}")
        if self.codebook_sync not in CODEBOOK_SYNC_MODES:
            raise InputError(f"codebook_sync must be one of {CODEBOOK_SYNC_MODES}, got {self.codebook_sync!r}")
        if self.ddp_find_unused_parameters is None:
            # Each phase leaves one side without gradients; DDP must be told to expect that.
            self.ddp_find_unused_parameters = True

    def phase_of_epoch(self, epoch: int) -> str:
        if not self.alternating:
            return RECOMMENDER_PHASE
        return TOKENIZER_PHASE if epoch % self.cycle == 0 else RECOMMENDER_PHASE

    def epochs_of_phase(self, phase: str) -> int:
        """How many of the ``num_train_epochs`` epochs belong to ``phase`` (a partial last epoch counts)."""
        total = math.ceil(self.num_train_epochs)
        return sum(self.phase_of_epoch(e) == phase for e in range(total))

    def loss_weights(self, phase: str, epoch: int) -> dict[str, float]:
        warm = epoch >= self.warm_epoch
        if phase == TOKENIZER_PHASE:
            return {
                "vq_loss": self.vq_loss_weight,
                "sia_loss": self.tok_sia_weight * warm,
                "psa_loss": self.tok_psa_weight * warm,
            }
        return {
            "code_loss": self.code_loss_weight,
            "sia_loss": self.rec_sia_weight * warm,
            "psa_loss": self.rec_psa_weight * warm,
        }

