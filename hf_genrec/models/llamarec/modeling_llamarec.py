"""ETEGRec's generative recommender on a decoder-only LLM backbone (LLaMA by default).

Input: item histories as code sequences ``[c0 c1 c2 c3 | c0 c1 c2 c3 | ...]`` embedded through the
model's own copy of the RQ-VAE codebooks (levels 0..L-2) or a suffix embedding (last level),
then ``scid_projector`` to the backbone width; fed as ``inputs_embeds`` (no text tokens, no vocab
resize). Output: at each target position, ``output_projector`` back to the codebook width and a
dot product with that level's codebook (weight tying), so the code loss trains the codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from ...data.item_map import UnknownItemError
from ..rqvae import RQVAEModel
from .configuration_llamarec import LlamaRecConfig
from .generation import CodeBeamSearchMixin


@dataclass
class LlamaRecOutput(ModelOutput):
    """Output of :meth:`LlamaRecForCodeGeneration.forward`.

    loss: code cross-entropy (mean over users and levels) when ``labels`` are given.
    logits: ``[B, code_length, code_vocab]`` scores of each target code.
    seq_latents: ``[B, hidden]`` hidden state at the last history token.
    seq_project_latents: ``[B, codebook_dim]`` ``enc_adapter(seq_latents)``, the SIA input.
    dec_latents: ``[B, semantic_dim]`` ``dec_adapter(seq_latents)``, the PSA input.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    seq_latents: torch.Tensor | None = None
    seq_project_latents: torch.Tensor | None = None
    dec_latents: torch.Tensor | None = None


class LlamaRecPreTrainedModel(PreTrainedModel):
    config_class = LlamaRecConfig
    base_model_prefix = "llamarec"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # forward() averages the loss itself; Trainer must not pass num_items_in_batch.
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        # Only the layers this class adds; the backbone (pretrained or not) and peft's LoRA
        # layers are initialised by their own code and must not be touched here.
        if module in getattr(self, "_new_layers", ()):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


class LlamaRecForCodeGeneration(CodeBeamSearchMixin, LlamaRecPreTrainedModel):
    """ETEGRec recommender. See the module docstring; ``generate()`` is in :class:`CodeBeamSearchMixin`.

    Build with a random backbone from ``config.backbone_config``, or around a pretrained one with
    :meth:`from_backbone`. ``item_codes`` (buffer ``[N + 1, code_length]``, row 0 = padding) maps
    item ids to codes and is saved with the model, so a reloaded model recommends item ids.
    """

    def __init__(self, config: LlamaRecConfig, backbone: PreTrainedModel | None = None):
        attn = backbone.config._attn_implementation if backbone is not None else None
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.backbone_config)

        if config.use_lora:
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=config.lora_target_modules,
                bias="none",
            )
            # In-place injection keeps key paths stable for the outer save/from_pretrained and
            # lets us freeze the base below (wrapping with get_peft_model breaks post_init; HF5-NOTES).
            inject_adapter_in_model(lora, self.backbone)
        hidden, dim = config.hidden_size, config.codebook_dim
        self.codebooks = nn.ModuleList(nn.Embedding(config.code_num, dim) for _ in range(config.num_levels))
        self.suffix_embedding = nn.Embedding(config.suffix_size, dim)
        self.scid_projector = nn.Linear(dim, hidden, bias=False)
        self.output_projector = nn.Linear(hidden, dim, bias=False)
        self.enc_adapter = nn.Linear(hidden, dim)
        self.dec_adapter = nn.Linear(hidden, config.semantic_dim)
        self._new_layers = (
            *self.codebooks,
            self.suffix_embedding,
            self.scid_projector,
            self.output_projector,
            self.enc_adapter,
            self.dec_adapter,
        )
        if not config.save_base_weights:
            # Adapter-only checkpoints lack the frozen base weights by design; _load_base_weights fills them.
            self._keys_to_ignore_on_load_missing = [r"^backbone\.(?!.*lora_)"]
        self.register_buffer("item_codes", torch.full((config.num_items + 1, config.code_length), -1, dtype=torch.long))
        self._trie = None
        self.post_init()
        if self.backbone.config._attn_implementation is None:
            # The outer PreTrainedModel init re-resolves the shared sub-config's attention and leaves it
            # None, which silently drops the backbone to a fallback path; restore what it was built with.
            self.backbone.config._attn_implementation = attn or "sdpa"
        if config.use_lora:
            # post_init let the backbone's own _init_weights re-draw the injected LoRA layers as N(0, 0.02);
            # restore peft's init (B = 0) so a pretrained backbone starts out computing exactly itself.
            for module in self.backbone.modules():
                if isinstance(module, LoraLayer):
                    module.reset_lora_parameters("default", init_lora_weights=True)
            self.freeze_backbone_base()

    # ----------------------------------------------------------------- construction helpers
    def freeze_backbone_base(self) -> None:
        """With LoRA, only the adapters of the backbone train (in fp32, as peft's own
        ``autocast_adapter_dtype`` does; peft casts activations at the adapter boundary); the
        base weights stay frozen in their dtype."""
        if self.config.use_lora:
            for name, p in self.backbone.named_parameters():
                is_lora = "lora_" in name
                p.requires_grad_(is_lora)
                if is_lora and p.dtype in (torch.float16, torch.bfloat16):
                    p.data = p.data.float()

    def base_weight_names(self) -> list[str]:
        """State-dict keys of the frozen backbone base weights (everything of the backbone but LoRA)."""
        return [f"backbone.{n}" for n in self.backbone.state_dict() if "lora_" not in n]

    def save_pretrained(self, save_directory, *args, state_dict=None, **kwargs):
        if not self.config.save_base_weights:
            if not (self.config.use_lora and self.config.backbone_name_or_path):
                raise ValueError("save_base_weights=False needs use_lora=True and config.backbone_name_or_path")
            base = set(self.base_weight_names())
            state_dict = {k: v for k, v in (state_dict or self.state_dict()).items() if k not in base}
        return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        if not model.config.save_base_weights:
            model._load_base_weights()
        elif model.config.use_lora:
            # A frozen base goes back to its own dtype (e.g. bf16); LoRA and the new layers stay as loaded.
            base_dtype = getattr(model.config.backbone_config, "dtype", None)
            if isinstance(base_dtype, str):
                base_dtype = getattr(torch, base_dtype)
            if isinstance(base_dtype, torch.dtype):
                for name, p in model.backbone.named_parameters():
                    if "lora_" not in name:
                        p.data = p.data.to(base_dtype)
        # Loading materialises fresh parameters (requires_grad=True); restore the LoRA freeze.
        model.freeze_backbone_base()
        return model

    def _load_base_weights(self) -> None:
        """Fill the frozen base weights from ``config.backbone_name_or_path``, strictly."""
        path = self.config.backbone_name_or_path
        base = AutoModel.from_pretrained(path, dtype="auto").state_dict()
        # peft wraps each targeted Linear: its weight moves to `<module>.base_layer.weight`.
        wanted = {n.removeprefix("backbone."): n for n in self.base_weight_names()}
        renamed = {}
        for key, value in base.items():
            lora_key = key
            for target in self.config.lora_target_modules:
                lora_key = lora_key.replace(f".{target}.", f".{target}.base_layer.")
            renamed[lora_key if lora_key in wanted else key] = value
        missing = sorted(set(wanted) - set(renamed))
        if missing:
            raise RuntimeError(f"backbone at {path} lacks {len(missing)} weights this model needs, e.g. {missing[:3]}")
        # assign=True keeps the checkpoint's dtype (bf16 stays bf16) instead of casting into fp32.
        self.backbone.load_state_dict({k: renamed[k] for k in wanted}, strict=False, assign=True)

    @classmethod
    def from_backbone(cls, backbone_name_or_path: str, dtype: torch.dtype | str = "auto", **config_kwargs):
        """Wrap a local (or hub) decoder-only checkpoint, e.g. Llama-2-7b-hf, with fresh ETEGRec layers."""
        backbone = AutoModel.from_pretrained(backbone_name_or_path, dtype=dtype)
        config = LlamaRecConfig(backbone_config=backbone.config, backbone_name_or_path=backbone_name_or_path, **config_kwargs)
        # The backbone keeps its (e.g. bf16) dtype; the new, trainable layers stay fp32 so the
        # optimizer never holds bf16 master weights. Values are cast where the two meet.
        config.save_base_weights = not config.use_lora
        return cls(config, backbone=backbone)

    # ------------------------------------------------------------------- item code table
    def set_item_codes(self, codes: torch.Tensor) -> None:
        """Install the item code table: ``[N, code_length]`` (row i = item i + 1) or ``[N + 1, code_length]``."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        n = self.config.num_items
        if codes.shape == (n, self.config.code_length):
            codes = torch.cat([codes.new_full((1, self.config.code_length), -1), codes])
        if codes.shape != (n + 1, self.config.code_length):
            raise ValueError(
                f"item codes must be [{n}, {self.config.code_length}] (or with a padding row), got {tuple(codes.shape)}"
            )
        body = codes[1:]
        if (body < 0).any() or (body[:, :-1] >= self.config.code_num).any() or (body[:, -1] >= self.config.suffix_size).any():
            raise ValueError("item codes out of range for this model's codebooks / suffix range")
        if torch.unique(body, dim=0).shape[0] != n:
            raise ValueError("item codes are not unique; add the collision suffix (RQVAEModel.get_codes)")
        codes[0] = -1
        self.item_codes.copy_(codes.to(self.item_codes.device))
        self._trie = None

    def codes_for_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """``[...]`` item ids -> ``[..., code_length]`` codes; unknown ids raise."""
        item_ids = torch.as_tensor(item_ids, device=self.item_codes.device)
        bad = (item_ids < 1) | (item_ids > self.config.num_items)
        if bad.any():
            raise UnknownItemError(f"unknown item id {int(item_ids[bad][0])}: this model knows ids 1..{self.config.num_items}")
        return self.item_codes[item_ids]

    # ----------------------------------------------------------------- codebook copies
    def copy_codebooks_from(self, rqvae: RQVAEModel) -> None:
        """Overwrite this model's codebooks with the tokenizer's (after a tokenizer phase)."""
        self._check_codebooks(rqvae)
        with torch.no_grad():
            for mine, theirs in zip(self.codebooks, rqvae.codebooks):
                mine.weight.copy_(theirs.weight.to(mine.weight))

    def copy_codebooks_to(self, rqvae: RQVAEModel) -> None:
        """Overwrite the tokenizer's codebooks with this model's (after a recommender phase)."""
        self._check_codebooks(rqvae)
        with torch.no_grad():
            for mine, theirs in zip(self.codebooks, rqvae.codebooks):
                theirs.weight.copy_(mine.weight.to(theirs.weight))

    def _check_codebooks(self, rqvae: RQVAEModel) -> None:
        c = rqvae.config
        if (c.num_levels, c.codebook_size, c.codebook_dim) != (
            self.config.num_levels,
            self.config.code_num,
            self.config.codebook_dim,
        ):
            raise ValueError(
                f"RQ-VAE codebooks ({c.num_levels} x {c.codebook_size} x {c.codebook_dim}) do not match the "
                f"recommender ({self.config.num_levels} x {self.config.code_num} x {self.config.codebook_dim})"
            )

    # ---------------------------------------------------------------------- embeddings
    @staticmethod
    def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
        """Left padding: positions count real tokens only (LlamaModel's default ignores padding)."""
        return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)

    def embed_codes(self, codes: torch.Tensor, levels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Soft embedding of codes ``[B, T]`` at levels ``[B, T]`` -> ``[B, T, hidden]`` (masked entries -> 0)."""
        n, k = self.config.num_levels, self.config.code_num
        table = torch.cat([*(b.weight for b in self.codebooks), self.suffix_embedding.weight])
        flat = torch.where(levels < n, levels * k + codes, n * k + codes).clamp_min(0)
        emb = self.scid_projector(F.embedding(flat, table).to(self.scid_projector.weight.dtype))
        if mask is not None:
            emb = emb * mask.unsqueeze(-1).to(emb.dtype)
        return emb.to(self.backbone_dtype)

    @property
    def backbone_dtype(self) -> torch.dtype:
        """Dtype the backbone computes in (its input embedding's); ``inputs_embeds`` are cast to it."""
        return self.backbone.get_input_embeddings().weight.dtype

    @property
    def dtype(self) -> torch.dtype:
        # The dtype of what trains (the heads; also what save_pretrained records), not of a frozen bf16
        # backbone whose first weight would otherwise make from_pretrained load the fp32 layers as bf16.
        return self.output_projector.weight.dtype

    def level_logits(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """Scores of every code of ``level`` from hidden states ``[..., hidden]`` -> ``[..., code_vocab]``."""
        query = self.output_projector(hidden.to(self.dtype))
        book = self.codebooks[level] if level < self.config.num_levels else self.suffix_embedding
        logits = query @ book.weight.to(query.dtype).t()
        pad = self.config.code_vocab - logits.shape[-1]
        return F.pad(logits, (0, pad), value=float("-inf")) if pad else logits

    # -------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        seq_end_positions: torch.Tensor,
        target_positions: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        **kwargs,
    ) -> LlamaRecOutput:
        """Teacher-forced pass over history codes + the target's first ``code_length - 1`` codes.

        Args:
            input_ids: ``[B, T]`` codes, left padded with -1.
            attention_mask: ``[B, T]`` 1 for real tokens.
            seq_end_positions: ``[B]`` index of the last history token (its hidden state is the sequence vector).
            target_positions: ``[B, code_length]`` indices whose hidden states predict target codes 0..L-1
                (``seq_end, seq_end + 1, ...``: position p predicts the token at p + 1, so no target code
                is visible to its own prediction).
            labels: ``[B, code_length]`` target codes (optional).
            targets: ``[B]`` target item ids (used by the trainer's SIA / PSA losses, not here).
        """
        if input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} differ")
        position_ids = self.position_ids_from_mask(attention_mask)
        levels = position_ids % self.config.code_length
        embeds = self.embed_codes(input_ids, levels, attention_mask)
        hidden = self.backbone(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        seq_latents = hidden[rows, seq_end_positions].to(self.dtype)
        target_hidden = hidden[rows.unsqueeze(1), target_positions]  # [B, L, H]
        logits = torch.stack([self.level_logits(target_hidden[:, lvl], lvl) for lvl in range(self.config.code_length)], 1)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
        return LlamaRecOutput(
            loss=loss,
            logits=logits,
            seq_latents=seq_latents,
            seq_project_latents=self.enc_adapter(seq_latents),
            dec_latents=self.dec_adapter(seq_latents),
        )
