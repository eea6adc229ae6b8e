"""``ETEGRecTrainer``: ETEGRec's end-to-end training on :class:`RecommenderTrainer`.

What is ETEGRec's own lives here: the joint module (recommender + RQ-VAE), phases, codebook
copies, code re-assignment, the two-sided optimizer and checkpoints that carry the tokenizer.
Evaluation is the generic one (``top_k_items`` = constrained beam search).
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict

import torch
from transformers.trainer_pt_utils import get_parameter_names

from ..distributed import finish_fsdp_setup, gathered_root_parameters, is_fsdp2, launched_with, load_full_state_dict
from ..models.llamarec import LlamaRecForCodeGeneration
from ..models.rqvae import RQVAEModel, assign_suffix, collision_rate
from ..models.saving import record_checkpoint_files
from ..utils.checkpoints import require_complete_checkpoint
from ..utils.errors import InputError
from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE, ETEGRecTrainingArguments
from .callbacks import AlternatingTrainingCallback
from .checkpoint import check_keys, read_weights
from .joint import ETEGRecJointModel
from .recommender_trainer import RecommenderTrainer, replace_pickled_training_args, staged_save_folder
from .schedules import PhaseLRScheduler

logger = logging.getLogger(__name__)

TOKENIZER_SUBDIR = "item_tokenizer"


class ETEGRecTrainer(RecommenderTrainer):
    """Trains :class:`LlamaRecForCodeGeneration` and its RQ-VAE tokenizer end to end.

    Args:
        model: the recommender (its ``item_codes`` must be set).
        item_tokenizer: the RQ-VAE whose codebooks the recommender copies.
        item_embeddings: ``[N, semantic_dim]`` frozen semantic embeddings (row i = item i + 1).
        args: :class:`ETEGRecTrainingArguments`.
        Everything else is passed to :class:`RecommenderTrainer` (collator: item ids; metrics:
        Recall/NDCG at ``args.metric_ks``).

    Loss: the weighted sum of the current phase (``args.loss_weights``). Optimizer: one
    optimizer of ``args.optim`` (e.g. ``adamw_bnb_8bit``) with the recommender's trainable
    parameters, its codebook copy as its own group (``codebook_learning_rate``), and the RQ-VAE
    as a separate group (own lr / weight decay; 32-bit states under bitsandbytes, i.e. plain AdamW).
    Every parameter is registered up front and the phase gates updates by freezing the other
    side: a frozen parameter has no gradient, so AdamW skips it (moments and weight decay included),
    which is what the official code's two optimizers do. The LR schedule is per side
    (:class:`~hf_genrec.training.schedules.PhaseLRScheduler`). A codebook overwritten by a copy
    loses its optimizer state.
    Evaluation runs ``top_k_items`` (constrained beam search); a hit is an exact match of all codes.
    """

    def __init__(
        self,
        model: LlamaRecForCodeGeneration,
        item_tokenizer: RQVAEModel,
        item_embeddings: torch.Tensor,
        args: ETEGRecTrainingArguments,
        callbacks=None,
        **kwargs,
    ):
        if not isinstance(args, ETEGRecTrainingArguments):
            raise TypeError("ETEGRecTrainer needs ETEGRecTrainingArguments")
        if args.deepspeed or launched_with("DEEPSPEED"):
            # ZeRO keeps its own fp32 master copy of every parameter: the codebook copies between the
            # recommender and the tokenizer would be overwritten at its next step, and it steps the
            # frozen side of a phase with zero gradients (Adam moments and weight decay still move it).
            raise InputError(
                "ETEGRecTrainer does not support DeepSpeed: ZeRO's fp32 master weights would silently undo the "
                "codebook copies between the recommender and the RQ-VAE, and its optimizer moves the side a phase "
                "freezes. Shard with FSDP2 instead (accelerate launch --config_file examples/accelerate/fsdp2.yaml), "
                "which shards parameters, gradients and optimizer states like ZeRO-3, or use plain DDP."
            )
        if (model.item_codes[1:] < 0).any():
            raise InputError("the recommender has no item codes; call model.set_item_codes(rqvae.get_codes(embeddings))")
        self.item_tokenizer = item_tokenizer
        joint = self._joint_module(model, item_tokenizer, torch.as_tensor(item_embeddings))
        joint.sia_temperature, joint.psa_temperature = args.sia_temperature, args.psa_temperature
        # Names, not tensors: FSDP2 replaces every parameter object when it shards the model.
        self._rec_trainable_names = {n for n, p in model.named_parameters() if p.requires_grad}
        self._loss_sums: dict[str, float] = defaultdict(float)
        self._loss_count = 0
        self.phase, self.epoch = RECOMMENDER_PHASE, 0
        callbacks = [AlternatingTrainingCallback(self), *(callbacks or [])]
        super().__init__(model=joint, args=args, recommender=model, callbacks=callbacks, **kwargs)
        # No phase yet: DDP (built when train() starts) only hooks parameters that require grad at
        # construction, so both sides stay trainable until the first on_epoch_begin freezes one.
        for p in self.item_tokenizer.parameters():
            p.requires_grad_(True)
        if self.is_fsdp_enabled and "FULL_STATE_DICT" not in str(self.accelerator.state.fsdp_plugin.state_dict_type):
            raise InputError(
                "ETEGRecTrainer saves loadable LlamaRecForCodeGeneration checkpoints, which under FSDP needs "
                "fsdp_state_dict_type: FULL_STATE_DICT (see examples/accelerate/fsdp2.yaml)"
            )

    @staticmethod
    def _joint_module(model, item_tokenizer, item_embeddings: torch.Tensor) -> ETEGRecJointModel:
        """The module to train. A pair already sharded by FSDP2 (e.g. by the trainer of an earlier
        stage) keeps its sharded joint module: sharding it again inside a new root would fail."""
        joint = model.__dict__.get("_genrec_fsdp_joint")
        if joint is not None and joint.item_tokenizer is item_tokenizer:
            joint.item_embeddings[1:].copy_(item_embeddings.to(joint.item_embeddings))
            return joint
        return ETEGRecJointModel(model, item_tokenizer, item_embeddings)

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        finally:
            # Leave the pair as it was given, both sides trainable, also when the run ended in a
            # tokenizer epoch (or failed): a later stage's trainer reads what trains from requires_grad.
            self.set_phase(None, self.epoch)

    def finish_distributed_setup(self) -> None:
        """Called once the Trainer has wrapped the model (``on_train_begin``)."""
        if is_fsdp2(self.model):
            finish_fsdp_setup(self.model)
            # Plain attribute, not a submodule (that would put the joint inside its own recommender).
            self.recommender.__dict__["_genrec_fsdp_joint"] = self.model

    # ------------------------------------------------------------------------ phases
    def _rec_trainable(self) -> list[torch.nn.Parameter]:
        """The recommender's trained parameters (LoRA or the full backbone, and the new layers)."""
        return [p for n, p in self.recommender.named_parameters() if n in self._rec_trainable_names]

    def set_phase(self, phase: str | None, epoch: int) -> None:
        """Freeze the side that does not train in ``phase``; ``None`` unfreezes both (outside training)."""
        if phase is not None:
            self.phase, self.epoch = phase, epoch
            self.model.phase = phase
        for p in self.item_tokenizer.parameters():
            p.requires_grad_(phase in (None, TOKENIZER_PHASE))
        for p in self._rec_trainable():
            p.requires_grad_(phase in (None, RECOMMENDER_PHASE))

    @torch.no_grad()
    def reassign_item_codes(self) -> dict[str, float]:
        """Recompute every item's codes with the current tokenizer (suffix included; with
        ``recode_margin`` > 0 an item keeps codes within the margin) and install them in the
        recommender's code table (the one table; the collator passes item ids).
        Returns the collision rate and the churn of the prefix codes (per level and any level)."""
        tok = self.item_tokenizer
        was_training = tok.training
        tok.eval()
        emb = self.model.item_embeddings[1:]
        levels = tok.config.num_levels
        old = self.recommender.item_codes[1:, :levels].cpu()
        margin = self.args.recode_margin
        with gathered_root_parameters(self.model):
            prefix = tok.get_prefix_codes(emb, previous=old if margin > 0 else None, margin=margin)
        codes = assign_suffix(prefix, tok.config.suffix_size)
        tok.train(was_training)
        moved = old != codes[:, :levels]
        self.recommender.set_item_codes(codes)
        # Churn of the semantic prefix only: a suffix shifts whenever a neighbour's prefix moves,
        # which says nothing about the item itself.
        stats = {"collision_rate": collision_rate(prefix), "changed_prefix": moved.any(1).float().mean().item()}
        stats.update({f"changed_level_{level}": moved[:, level].float().mean().item() for level in range(levels)})
        return stats

    def reset_optimizer_state(self, params) -> None:
        """Forget the optimizer state (Adam moments, step) of ``params`` whose values were just
        overwritten: moments computed for the old values would push the new ones."""
        if self.optimizer is None:
            return
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate's wrapper
        for p in params:
            optimizer.state.pop(p, None)

    def copy_codebooks_to_recommender(self) -> None:
        """Tokenizer -> recommender codebook copy (after a tokenizer epoch), with a fresh optimizer state."""
        self.recommender.copy_codebooks_from(self.item_tokenizer)
        self.reset_optimizer_state(self.recommender.codebooks.parameters())

    def copy_codebooks_to_tokenizer(self) -> None:
        """Recommender -> tokenizer codebook copy (``codebook_sync="both"``), with a fresh optimizer state."""
        self.recommender.copy_codebooks_to(self.item_tokenizer)
        self.reset_optimizer_state(self.item_tokenizer.codebooks.parameters())

    # ------------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = self.args.loss_weights(self.phase, self.epoch)
        self.model.active_losses = {name for name, w in weights.items() if w}
        out = model(**inputs)
        loss = sum(w * out[name] for name, w in weights.items() if w)
        for name in ("code_loss", "sia_loss", "psa_loss", "vq_loss"):
            if out.get(name) is not None:
                self._loss_sums[name] += out[name].detach().float().item()
        self._loss_count += 1
        return (loss, out) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._loss_count:
            logs.update({k: round(v / self._loss_count, 6) for k, v in self._loss_sums.items()})
            logs["phase"] = 0 if self.phase == TOKENIZER_PHASE else 1  # numeric so every logger accepts it
            self._loss_sums.clear()
            self._loss_count = 0
        super().log(logs, *args, **kwargs)

    # -------------------------------------------------------------------- optimizer
    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        args = self.args
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(args, self.model)
        decay = set(get_parameter_names(self.recommender, [torch.nn.LayerNorm, torch.nn.Embedding]))
        decay = {n for n in decay if "bias" not in n and "norm" not in n}
        rec_named = [(n, p) for n, p in self.recommender.named_parameters() if n in self._rec_trainable_names]
        shared = {n for n, _ in rec_named if n.startswith("codebooks.")}
        codebook_lr = args.codebook_learning_rate
        if codebook_lr is None:
            # Written back into the RQ-VAE ("both"): keep it at the tokenizer's pace. Otherwise the
            # copy is the recommender's own code embedding table and trains with the recommender.
            codebook_lr = args.tokenizer_learning_rate if args.codebook_sync == "both" else args.learning_rate
        rec, tok = RECOMMENDER_PHASE, TOKENIZER_PHASE
        groups = [
            {"params": [p for n, p in rec_named if n in decay and n not in shared], "weight_decay": args.weight_decay,
             "side": rec},
            {"params": [p for n, p in rec_named if n not in decay and n not in shared], "weight_decay": 0.0, "side": rec},
            {"params": [p for n, p in rec_named if n in shared], "weight_decay": 0.0, "lr": codebook_lr, "side": rec},
            {
                "params": list(self.item_tokenizer.parameters()),
                "weight_decay": args.tokenizer_weight_decay,
                "lr": args.tokenizer_learning_rate,
                "side": tok,
            },
        ]
        groups = [g for g in groups if g["params"]]
        if "bitsandbytes" in optimizer_cls.__module__:
            import bitsandbytes as bnb

            # 32-bit states for the RQ-VAE: it is small and its codebooks are sensitive, so it
            # gets plain AdamW behaviour inside the one (8-bit) optimizer.
            manager = bnb.optim.GlobalOptimManager.get_instance()
            for module in self.item_tokenizer.modules():
                for pname, _ in module.named_parameters(recurse=False):
                    manager.register_module_override(module, pname, {"optim_bits": 32})
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """One schedule per side, each advancing only in its own phase (see :mod:`.schedules`)."""
        if self.lr_scheduler is None:
            args = self.args
            # Count each side's steps exactly, from the steps of an epoch (as the training loop does),
            # so --max_steps (which can end mid-epoch, or run past num_train_epochs) is honoured too.
            batches = len(self.get_train_dataloader())
            accum = args.gradient_accumulation_steps
            per_epoch = max(batches // accum + int(batches % accum > 0), 1)
            sides = (RECOMMENDER_PHASE, TOKENIZER_PHASE)
            phases = [args.phase_of_epoch(e) for e in range(math.ceil(num_training_steps / per_epoch))]
            total = {side: 0 for side in sides}
            for epoch, phase in enumerate(phases):
                total[phase] += min(per_epoch, num_training_steps - epoch * per_epoch)
            total = {side: max(1, n) for side, n in total.items()}
            rec_warmup = args.get_warmup_steps(total[RECOMMENDER_PHASE])
            tw = args.tokenizer_warmup_steps
            if tw is None:
                tok_warmup = round(rec_warmup / total[RECOMMENDER_PHASE] * total[TOKENIZER_PHASE])
            else:
                tok_warmup = int(tw) if tw >= 1 else math.ceil(tw * total[TOKENIZER_PHASE])
            self.lr_scheduler = PhaseLRScheduler(
                optimizer or self.optimizer,
                str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
                warmup={RECOMMENDER_PHASE: rec_warmup, TOKENIZER_PHASE: tok_warmup},
                total=total,
                current_phase=lambda: self.phase,
            )
            self.mark_scheduler_created()
        return self.lr_scheduler

    # ------------------------------------------------------------------- evaluation
    def evaluation_loop(self, *args, **kwargs):
        # generate() runs outside the joint module's forward: gather FSDP2's root group once per evaluation.
        with gathered_root_parameters(self.model):
            return super().evaluation_loop(*args, **kwargs)

    def top_k_kwargs(self) -> dict:
        return {"num_beams": self.args.eval_num_beams, "chunk_size": self.args.eval_chunk_size}

    # ---------------------------------------------------------------- save / load
    def write_model_folder(self, output_dir: str, state_dict=None):
        """Save the recommender as a loadable ``LlamaRecForCodeGeneration`` checkpoint, and the
        tokenizer beside it in ``item_tokenizer/`` (needed to resume or keep training).

        ``state_dict``: the joint module's full state dict, which ``Trainer.save_model`` gathers on
        every rank under FSDP before calling this; otherwise the modules' own state is saved.
        """
        if not self.args.should_save:
            return  # every rank gets here (after any gather); only the main process writes
        rec_state = tok_state = None
        if state_dict is not None:
            rec_state = {k.removeprefix("recommender."): v for k, v in state_dict.items() if k.startswith("recommender.")}
            tok_state = {k.removeprefix("item_tokenizer."): v for k, v in state_dict.items() if k.startswith("item_tokenizer.")}
        elif is_fsdp2(self.model):
            raise RuntimeError("under FSDP the weights are sharded: save with trainer.save_model(), which gathers them")
        with staged_save_folder(output_dir) as stage:  # the pair appears whole or not at all
            self.recommender.save_pretrained(stage, state_dict=rec_state)
            self.item_tokenizer.save_pretrained(os.path.join(stage, TOKENIZER_SUBDIR), state_dict=tok_state)
            # resuming or keeping on training needs it: loading the folder checks it is there
            record_checkpoint_files(stage, f"{TOKENIZER_SUBDIR}/config.json", f"{TOKENIZER_SUBDIR}/model.safetensors")
            replace_pickled_training_args(self.args, stage)

    def load_checkpoint_weights(self, folder: str, model=None):
        require_complete_checkpoint(folder)
        self._load_joint(folder)

    def load_saved_model(self, folder: str) -> None:
        """The recommender and its item tokenizer, as :meth:`write_model_folder` wrote them."""
        self._load_joint(folder)

    def load_best_model(self):
        logger.info("loading the best model from %s (%s)", self.state.best_model_checkpoint, self.args.metric_for_best_model)
        self._load_joint(self.state.best_model_checkpoint)

    def _load_joint(self, folder: str) -> None:
        """Load a checkpoint written by :meth:`write_model_folder` into the trained pair, strictly (sharded or not)."""
        state = {f"recommender.{k}": v for k, v in read_weights(folder).items()}
        # Adapter-only backbones keep their adapters beside the weights, in peft's format: loaded with
        # the rest, so the (FSDP-aware) full-state-dict loading below places them too.
        state.update({f"recommender.{k}": v for k, v in self.recommender.adapter_state_from(folder).items()})
        state.update({f"item_tokenizer.{k}": v for k, v in read_weights(os.path.join(folder, TOKENIZER_SUBDIR)).items()})
        # An adapter-only checkpoint lacks the frozen base weights by design (they stay as loaded).
        may_be_missing = [
            "^recommender\\." + p.removeprefix("^") for p in (self.recommender._keys_to_ignore_on_load_missing or [])
        ]
        check_keys(folder, set(state), set(self.model.state_dict()), may_be_missing)
        load_full_state_dict(self.model, state)
        # A checkpoint must have brought the adapters (in peft's format, loaded with the rest above).
        self.recommender.load_adapters_from(folder, check_only=True)

