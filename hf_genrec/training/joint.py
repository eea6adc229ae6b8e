"""The module the Trainer trains: recommender + item tokenizer, each with its own codebooks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..models.llamarec import LlamaRecForCodeGeneration
from ..models.rqvae import RQVAEModel
from ..utils.errors import InputError
from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE
from .losses import first_occurrence, psa_loss, sia_loss


@dataclass
class JointOutput(ModelOutput):
    """Loss components of one batch (scalars); ``vq_loss`` only in a tokenizer phase, ``code_loss`` only in a
    recommender phase, and only the losses the joint module was asked for (``active_losses``)."""

    code_loss: torch.Tensor | None = None
    sia_loss: torch.Tensor | None = None
    psa_loss: torch.Tensor | None = None
    vq_loss: torch.Tensor | None = None


class ETEGRecJointModel(nn.Module):
    """Holds the recommender and the RQ-VAE so one DDP wrapper, one gradient clip and one
    optimizer see both. The two never share a parameter (the recommender has its own codebook
    copy), so DDP has nothing marked ready twice. ``phase`` is set by the training callback.

    ``item_embeddings`` ``[N, semantic_dim]`` (row i = item i + 1) are the frozen RQ-VAE inputs.
    """

    # The Trainer divides the loss by the accumulation steps itself: without this it would also pass
    # num_items_in_batch to forward and expect a loss summed over the batch.
    accepts_loss_kwargs = False

    def __init__(self, recommender: LlamaRecForCodeGeneration, item_tokenizer: RQVAEModel, item_embeddings: torch.Tensor):
        super().__init__()
        n = recommender.config.num_items
        if tuple(item_embeddings.shape) != (n, item_tokenizer.config.semantic_dim):
            raise InputError(
                f"item_embeddings must be [{n}, {item_tokenizer.config.semantic_dim}] (items x RQ-VAE semantic_dim), got "
                f"{tuple(item_embeddings.shape)}"
            )
        if recommender.config.semantic_dim != item_tokenizer.config.semantic_dim:
            raise InputError("recommender.config.semantic_dim must equal the RQ-VAE semantic_dim (PSA compares them)")
        self.recommender = recommender
        self.item_tokenizer = item_tokenizer
        padded = torch.cat([item_embeddings.new_zeros(1, item_embeddings.shape[1]), item_embeddings.float()])
        self.register_buffer("item_embeddings", padded, persistent=False)
        self.phase = RECOMMENDER_PHASE
        #: losses forward() computes; the trainer narrows it to those weighted above 0
        self.active_losses = {"code_loss", "sia_loss", "psa_loss", "vq_loss"}
        self.sia_temperature = 1.0
        self.psa_temperature = 0.07

    @property
    def _no_split_modules(self) -> list[str]:
        # FSDP's transformer auto-wrap reads this: each backbone block (LlamaDecoderLayer,
        # Qwen2DecoderLayer, ...) becomes its own FSDP unit with no per-backbone config. Names are
        # those of the classes present now: a block FSDP2 already sharded is an FSDP<Block> subclass,
        # which accelerate must still find when a later stage's Trainer prepares the same module.
        blocks = set(self.recommender.backbone._no_split_modules or [])
        present = {type(m) for m in self.recommender.backbone.modules()}
        return sorted(cls.__name__ for cls in present if blocks & {c.__name__ for c in cls.__mro__})

    @property
    def config(self):  # lets Trainer code that reads model.config see the recommender's
        return self.recommender.config

    # TrainingArguments(gradient_checkpointing=True) calls these on the trained module; only the
    # recommender's backbone is deep enough to checkpoint.
    supports_gradient_checkpointing = True

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **kwargs) -> None:
        kw = {"use_reentrant": False, **(activation_checkpointing_kwargs or {})}
        rec = self.recommender
        # transformers renamed the hook (and its kwargs) within 5.x; call whichever this release has.
        if hasattr(rec, "activation_checkpointing_enable"):
            rec.activation_checkpointing_enable(activation_checkpointing_kwargs=kw, **kwargs)
        else:
            rec.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs) -> None:
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def activation_checkpointing_disable(self) -> None:
        rec = self.recommender
        getattr(rec, "activation_checkpointing_disable", rec.gradient_checkpointing_disable)()

    gradient_checkpointing_disable = activation_checkpointing_disable

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.recommender.is_gradient_checkpointing

    def forward(self, history: torch.Tensor, targets: torch.Tensor, **kwargs) -> JointOutput:
        """``history`` ``[B, H]`` (item ids, left padded with 0) and ``targets`` ``[B]``, as the collator
        builds them (other collator outputs, e.g. ``history_timestamps``, are not used by ETEGRec).

        Only the losses in ``active_losses`` are computed (the trainer sets it to those with a
        non-zero weight): a loss weighted 0 adds no gradient, so skipping it changes nothing learned,
        and before ``warm_epoch`` a tokenizer epoch then never runs the LLM, fine-tuning never runs
        the RQ-VAE.
        """
        active = self.active_losses
        align = bool(active & {"sia_loss", "psa_loss"})
        tokenizer_phase = self.phase == TOKENIZER_PHASE
        out = JointOutput()
        rec = self.recommender(history=history, targets=targets) if (align or not tokenizer_phase) else None
        if rec is not None and not tokenizer_phase:
            out.code_loss = rec.loss
        if not (align or tokenizer_phase):
            return out
        # SIA, PSA and the VQ loss see each distinct target once (official: np.unique over the
        # batch's targets), so a popular item is neither over-weighted nor its own negative.
        if rec is not None and rec.predicted_items is not None:
            # Whole-sequence training: SIA / PSA at every predicted item, not only the last.
            targets = rec.predicted_items
        elif self.recommender.config.train_on_all_positions:
            # A tokenizer epoch without alignment: the VQ loss sees the items of whole sequences.
            targets = torch.cat([history[history > 0], targets])
        keep = first_occurrence(targets)
        tok = self.item_tokenizer(self.item_embeddings[targets[keep]].to(self.item_tokenizer.dtype))
        if tokenizer_phase:
            out.vq_loss = tok.loss
        if "sia_loss" in active:
            seq_logits = self.item_tokenizer.quantizer(rec.seq_project_latents[keep].to(self.item_tokenizer.dtype)).code_logits
            out.sia_loss = sia_loss(seq_logits, tok.code_logits, self.sia_temperature)
        if "psa_loss" in active:
            out.psa_loss = psa_loss(rec.dec_latents[keep], tok.reconstruction, self.psa_temperature)
        return out
