"""``GenRecTrainer``: ETEGRec's end-to-end training as a ``transformers.Trainer`` extension."""

from __future__ import annotations

import logging
import os
from collections import defaultdict

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import get_parameter_names

from ..data_collator import DataCollatorForCodeSeq
from ..metrics import DEFAULT_KS, ranking_metrics_from_ranks, target_ranks
from ..models.llamarec import LlamaRecForCodeGeneration
from ..models.rqvae import RQVAEModel, assign_suffix, collision_rate
from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE, GenRecTrainingArguments
from .callbacks import AlternatingTrainingCallback
from .checkpoint import load_weights_strict
from .joint import ETEGRecJointModel

logger = logging.getLogger(__name__)

TOKENIZER_SUBDIR = "item_tokenizer"


def compute_ranking_metrics(pred, ks=DEFAULT_KS) -> dict[str, float]:
    """``compute_metrics`` for :class:`GenRecTrainer`: its predictions are 0-based target ranks."""
    return ranking_metrics_from_ranks(torch.as_tensor(pred.predictions).reshape(-1), ks)


class GenRecTrainer(Trainer):
    """Trains :class:`LlamaRecForCodeGeneration` and its RQ-VAE tokenizer end to end.

    Args:
        model: the recommender (its ``item_codes`` must be set).
        item_tokenizer: the RQ-VAE whose codebooks the recommender copies.
        item_embeddings: ``[N, in_dim]`` frozen semantic embeddings (row i = item i + 1).
        args: :class:`GenRecTrainingArguments`.
        Everything else is passed to ``Trainer``; ``data_collator`` defaults to
        :class:`DataCollatorForCodeSeq` and ``compute_metrics`` to Recall/NDCG@1/5/10.

    Loss: the weighted sum of the current phase (``args.loss_weights``). Optimizer: one
    optimizer of ``args.optim`` (e.g. ``adamw_bnb_8bit``) with the recommender's trainable
    parameters, its codebook copy as its own group (``codebook_learning_rate``), and the RQ-VAE
    as a separate group (own lr / weight decay; 32-bit states under bitsandbytes, i.e. plain AdamW).
    Every parameter is registered up front and the phase gates updates by freezing the other
    side: a frozen parameter has no gradient, so AdamW skips it.
    Evaluation runs ``generate()`` and reports Recall@k / NDCG@k on exact 4-code matches.
    """

    def __init__(
        self,
        model: LlamaRecForCodeGeneration,
        item_tokenizer: RQVAEModel,
        item_embeddings: torch.Tensor,
        args: GenRecTrainingArguments,
        data_collator=None,
        compute_metrics=None,
        callbacks=None,
        **kwargs,
    ):
        if not isinstance(args, GenRecTrainingArguments):
            raise TypeError("GenRecTrainer needs GenRecTrainingArguments")
        if (model.item_codes[1:] < 0).any():
            raise ValueError("the recommender has no item codes; call model.set_item_codes(rqvae.get_codes(embeddings))")
        self.recommender = model
        self.item_tokenizer = item_tokenizer
        joint = ETEGRecJointModel(model, item_tokenizer, torch.as_tensor(item_embeddings))
        joint.sia_temperature, joint.psa_temperature = args.sia_temperature, args.psa_temperature
        # The collator keeps a CPU copy of the code table; reassign_item_codes updates both.
        data_collator = data_collator or DataCollatorForCodeSeq(model.item_codes.detach().cpu().clone(), args.max_history)
        self._rec_trainable = [p for p in model.parameters() if p.requires_grad]
        self._loss_sums: dict[str, float] = defaultdict(float)
        self._loss_count = 0
        self.phase, self.epoch = RECOMMENDER_PHASE, 0
        callbacks = [AlternatingTrainingCallback(self), *(callbacks or [])]
        super().__init__(
            model=joint,
            args=args,
            data_collator=data_collator,
            compute_metrics=compute_metrics or compute_ranking_metrics,
            callbacks=callbacks,
            **kwargs,
        )
        # No phase yet: DDP (built when train() starts) only hooks parameters that require grad at
        # construction, so both sides stay trainable until the first on_epoch_begin freezes one.
        for p in self.item_tokenizer.parameters():
            p.requires_grad_(True)

    # ------------------------------------------------------------------------ phases
    def set_phase(self, phase: str, epoch: int) -> None:
        """Freeze the side that does not train in ``phase``."""
        self.phase, self.epoch = phase, epoch
        self.model.phase = phase
        train_tok = phase == TOKENIZER_PHASE
        for p in self.item_tokenizer.parameters():
            p.requires_grad_(train_tok)
        for p in self._rec_trainable:
            p.requires_grad_(not train_tok)

    @torch.no_grad()
    def reassign_item_codes(self) -> dict[str, float]:
        """Recompute every item's codes with the current tokenizer (suffix included) and install
        them in the recommender and the collator. Returns the collision statistics."""
        tok = self.item_tokenizer
        was_training = tok.training
        tok.eval()
        emb = self.model.item_embeddings[1:]
        prefix = tok.get_prefix_codes(emb)
        codes = assign_suffix(prefix, tok.config.suffix_size)
        tok.train(was_training)
        changed = (codes.to(self.recommender.item_codes.device) != self.recommender.item_codes[1:]).any(1).float().mean().item()
        self.recommender.set_item_codes(codes)
        if isinstance(self.data_collator, DataCollatorForCodeSeq):
            self.data_collator.item_codes.copy_(self.recommender.item_codes.cpu())
        return {"collision_rate": collision_rate(prefix), "changed_items": changed}

    # ------------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(**inputs)
        weights = self.args.loss_weights(self.phase, self.epoch)
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
        trainable_ids = {id(p) for p in self._rec_trainable}
        rec_named = [(n, p) for n, p in self.recommender.named_parameters() if id(p) in trainable_ids]
        shared = {n for n, _ in rec_named if n.startswith("codebooks.")}
        codebook_lr = args.codebook_learning_rate if args.codebook_learning_rate is not None else args.tokenizer_learning_rate
        groups = [
            {"params": [p for n, p in rec_named if n in decay and n not in shared], "weight_decay": args.weight_decay},
            {"params": [p for n, p in rec_named if n not in decay and n not in shared], "weight_decay": 0.0},
            {"params": [p for n, p in rec_named if n in shared], "weight_decay": 0.0, "lr": codebook_lr},
            {
                "params": list(self.item_tokenizer.parameters()),
                "weight_decay": args.tokenizer_weight_decay,
                "lr": args.tokenizer_learning_rate,
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

    # ------------------------------------------------------------------- evaluation
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Generate top-k items for each history and return each target's rank (a miss = k)."""
        inputs = self._prepare_inputs(inputs)
        k = max(DEFAULT_KS)
        history = inputs["input_ids"].shape[1] - (self.recommender.config.code_length - 1)
        out = self.recommender.generate(
            inputs["input_ids"][:, :history],
            inputs["attention_mask"][:, :history],
            num_beams=max(self.args.eval_num_beams, k),
            num_return_sequences=k,
            chunk_size=self.args.eval_chunk_size,
        )
        ranks = target_ranks(out.item_ids, inputs["targets"])
        return None, ranks, inputs["targets"]

    # ---------------------------------------------------------------- save / load
    def _save(self, output_dir: str | None = None, state_dict=None):
        """Save the recommender as a loadable ``LlamaRecForCodeGeneration`` checkpoint, and the
        tokenizer beside it in ``item_tokenizer/`` (needed to resume or keep training)."""
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.recommender.save_pretrained(output_dir)
        self.item_tokenizer.save_pretrained(os.path.join(output_dir, TOKENIZER_SUBDIR))
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        self._load_joint(resume_from_checkpoint)

    def _load_best_model(self):
        logger.info("loading the best model from %s (%s)", self.state.best_model_checkpoint, self.args.metric_for_best_model)
        self._load_joint(self.state.best_model_checkpoint)

    def _load_joint(self, folder: str) -> None:
        load_weights_strict(self.recommender, folder)
        load_weights_strict(self.item_tokenizer, os.path.join(folder, TOKENIZER_SUBDIR))
        self.recommender._trie = None
        if isinstance(self.data_collator, DataCollatorForCodeSeq):
            self.data_collator.item_codes.copy_(self.recommender.item_codes.cpu())
