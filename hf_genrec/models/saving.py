"""``save_pretrained`` that writes a checkpoint whole or not at all, and records what it must hold.

Every hf_genrec model saves through :class:`StagedSaveMixin`: the folder is written into a
temporary sibling and renamed into place (:func:`hf_genrec.utils.atomic.staged_folder`), so a kill
leaves the previous checkpoint or none, never weights without their item map. The config records
the files beyond the weights that the folder must hold (``checkpoint_files``: the item map, each
adapter-only backbone's adapter), and :func:`check_checkpoint_files` refuses, at load, a folder
lacking any of them, naming the file.
"""

from __future__ import annotations

import json
import os
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

from ..utils.atomic import interrupted_replacements, staged_folder
from ..utils.errors import CheckpointError, GenRecError, InputError, MissingFileError

#: what ``save_pretrained(push_to_hub=True, ...)`` takes for the upload; passed on to ``push_to_hub``
_PUSH_ARGUMENTS = ("repo_id", "commit_message", "private", "token", "revision", "create_pr", "commit_description")


class StagedSaveMixin:
    """Put before the ``PreTrainedModel`` base. Subclasses list extra files in
    :meth:`checkpoint_extra_files` and write them in :meth:`write_beside_weights`."""

    def checkpoint_extra_files(self) -> list[str]:
        """Files (relative paths) besides ``config.json`` and the weights a loadable folder holds."""
        return []

    def write_beside_weights(self, folder: str) -> None:
        """Write the files of :meth:`checkpoint_extra_files` that ``PreTrainedModel`` does not."""

    def save_pretrained(self, save_directory, *args, is_main_process: bool = True, push_to_hub: bool = False, **kwargs):
        if not is_main_process:  # the main process writes the folder; others take part in any gather
            return super().save_pretrained(save_directory, *args, is_main_process=False, **kwargs)
        push = {k: kwargs.pop(k) for k in _PUSH_ARGUMENTS if k in kwargs}
        self.config.checkpoint_files = sorted(self.checkpoint_extra_files())
        with staged_folder(save_directory) as stage:
            out = super().save_pretrained(stage, *args, **kwargs)
            self.write_beside_weights(stage)
            missing = [f for f in self.config.checkpoint_files if not os.path.exists(os.path.join(stage, f))]
            if missing:  # a bug in a family's save, caught before it replaces a good checkpoint
                raise RuntimeError(f"save_pretrained did not write {missing} into {save_directory}")
        if push_to_hub:
            repo_id = push.pop("repo_id", os.path.basename(os.path.abspath(os.fspath(save_directory))))
            self.push_to_hub(repo_id, max_shard_size=kwargs.get("max_shard_size", "50GB"), **push)
        return out

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``, strict: a folder mid-replacement, weights that do not
        match the config (missing, unexpected or of other shapes) and a missing file of
        ``config.checkpoint_files`` are refused, each naming the problem."""
        check_not_mid_replacement(pretrained_model_name_or_path)
        wants_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        except GenRecError:
            raise
        except OSError as err:  # transformers: neither a checkpoint folder nor a Hub model, or a file missing
            raise CheckpointError(f"cannot load a {cls.__name__} from {pretrained_model_name_or_path}: {err}") from err
        except RuntimeError as err:
            if "ignore_mismatched_sizes" not in str(err):
                raise
            raise InputError(
                f"{pretrained_model_name_or_path}: its weights have other shapes than its config.json describes (see "
                "the load report above): the config and the weights come from different saves, or were edited"
            ) from None
        # transformers fills missing weights with a fresh init and drops unexpected ones, with a
        # warning: a checkpoint that does not hold exactly this model's weights is refused instead.
        wrong = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys")}
        if any(wrong.values()):
            raise InputError(
                f"{pretrained_model_name_or_path}: the weights do not match the model its config.json describes: "
                + "; ".join(f"{k.replace('_', ' ')} {v[:3]}{'...' if len(v) > 3 else ''}" for k, v in wrong.items() if v)
            )
        hub = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder") if k in kwargs}
        check_checkpoint_files(model, pretrained_model_name_or_path, **hub)
        return (model, info) if wants_info else model


def optional_checkpoint_file(checkpoint, name: str, subfolder: str = "", **hub_kwargs) -> str | None:
    """The local path of file ``name`` of a checkpoint (a folder, or a Hub model: downloaded into the
    cache), or None when the checkpoint has no such file. ``hub_kwargs``: ``hf_hub_download``'s
    ``cache_dir``, ``revision``, ``token``, ``local_files_only``."""
    checkpoint = str(checkpoint)
    if os.path.isdir(checkpoint):
        path = os.path.join(checkpoint, subfolder or "", name)
        return path if os.path.isfile(path) else None
    try:
        return hf_hub_download(checkpoint, name, subfolder=subfolder or None, **hub_kwargs)
    except EntryNotFoundError:
        return None


def record_checkpoint_files(folder: str, *files: str) -> None:
    """Add ``files`` to the ``checkpoint_files`` of the config saved in ``folder`` (for what a caller
    writes beside a model, e.g. a trainer's item tokenizer), so loading checks them too."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["checkpoint_files"] = sorted({*config.get("checkpoint_files", []), *files})
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def check_not_mid_replacement(checkpoint) -> None:
    """Name the previous checkpoint when a save was killed between the two renames that replace a
    folder (``checkpoint`` is gone, the old one is ``.<name>.old-<pid>`` beside it)."""
    path = os.fspath(checkpoint)
    if os.path.exists(path) or not os.path.isdir(os.path.dirname(os.path.abspath(path)) or "."):
        return
    set_aside = interrupted_replacements(path)
    if set_aside:
        raise MissingFileError(
            f"{path} does not exist but {set_aside[-1]} does: a save was killed while replacing it, and that folder is "
            f"the previous checkpoint (the next save_pretrained to {path} puts it back first; or rename it)"
        )


def check_checkpoint_files(model: Any, checkpoint: str, **hub_kwargs) -> None:
    """Refuse a checkpoint lacking a file its config says it holds (an interrupted copy, a hand edit)."""
    for name in getattr(model.config, "checkpoint_files", None) or []:
        if not isinstance(name, str) or os.path.isabs(name) or ".." in name.split("/"):
            raise InputError(f"{checkpoint}/config.json: checkpoint_files holds {name!r}, not a path inside the folder")
        if optional_checkpoint_file(checkpoint, name, **hub_kwargs) is None:
            raise MissingFileError(
                f"{checkpoint} has no {name}, which its config says the checkpoint holds: the folder is incomplete "
                "(an interrupted copy?) or was edited"
            )
