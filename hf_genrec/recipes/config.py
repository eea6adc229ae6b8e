"""A recipe's arguments: its defaults, an optional YAML config file (or a named preset shipped with
the package), then the command line, each layer overriding the one before.

``hf-genrec train etegrec --config embedded --seed 3`` reads ``presets/etegrec-embedded.yaml``;
``--config my_run.yaml`` reads that file. A config file's keys are the flags' names (without
``--``); its values are what the flag would take (a list for a multi-value flag). A command line
with no arguments at all runs the ``embedded`` preset: the CPU-sized default on generated data.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Sequence
from importlib import resources

import torch
import yaml
from transformers import HfArgumentParser, set_seed

from ..utils.errors import InputError, MissingFileError

logger = logging.getLogger(__name__)

#: the preset a command line without arguments runs
DEFAULT_PRESET = "embedded"

#: run-shaping defaults the recommender recipes share (each adds its own epochs, lr, output dir, ...)
RUN_DEFAULTS = {
    "per_device_eval_batch_size": 256,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "load_best_model_at_end": True,
    "metric_for_best_model": "ndcg@10",
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "logging_steps": 50,
    "report_to": "none",
    # a resumed stage keeps early stopping's patience count (saved with every checkpoint)
    "restore_callback_states_from_checkpoint": True,
}


def preset_names(recipe: str) -> list[str]:
    """The presets shipped for ``recipe`` (``presets/<recipe>-<name>.yaml``)."""
    folder = resources.files(__package__) / "presets"
    prefix = f"{recipe}-"
    return sorted(p.name[len(prefix) : -len(".yaml")] for p in folder.iterdir() if p.name.startswith(prefix))


def resolve_config(recipe: str, config: str) -> tuple[str, str]:
    """``(label, YAML text)`` of ``--config``: a file path, else the name of a shipped preset."""
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            return config, f.read()
    preset = resources.files(__package__) / "presets" / f"{recipe}-{config}.yaml"
    if preset.is_file():
        return f"preset {config!r}", preset.read_text(encoding="utf-8")
    raise MissingFileError(
        f"--config {config}: no such file, and no preset of that name for {recipe} (presets: {', '.join(preset_names(recipe))})"
    )


def config_to_flags(label: str, text: str, known: set[str]) -> list[str]:
    """A YAML mapping of ``{flag: value}`` as command-line tokens, so each value is converted and
    checked exactly as the flag would be. Unknown keys and nested values are refused."""
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{label}: not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise InputError(f"{label}: expected a mapping of flag names to values, got {type(values).__name__}")
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise InputError(f"{label}: unknown keys {unknown}; keys are this command's flags without --")
    flags: list[str] = []
    for key, value in values.items():
        if value is None or isinstance(value, dict):
            raise InputError(f"{label}: {key} must be a value or a list (leave the key out for the default)")
        items = value if isinstance(value, list) else [value]
        flags += [f"--{key}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in items)]
    return flags


@dataclasses.dataclass
class ConfigFileArguments:
    config: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "a YAML file of flag: value pairs, or the name of a preset shipped with the package; flags given "
            f"on the command line override it. No arguments at all: --config {DEFAULT_PRESET}"
        },
    )


def parse_recipe_args(
    recipe: str,
    dataclass_types: Sequence[type],
    argv: Sequence[str],
    defaults: dict[str, object] | None = None,
    prog: str | None = None,
) -> tuple:
    """Parse ``argv`` into ``dataclass_types`` (the last one a ``TrainingArguments``): the dataclasses'
    own defaults, overridden by the recipe's ``defaults``, by ``--config`` (a YAML file or a preset
    name; ``embedded`` when ``argv`` is empty), then by the flags themselves.

    Without a GPU ``use_cpu`` defaults to true; the seed is set. A bad
    argument or config ends like any argparse error (usage, one line, exit status 2); logging is
    the caller's (the commands configure it)."""
    argv = list(argv)
    presets = ", ".join(preset_names(recipe))
    command = prog or f"hf-genrec train {recipe}"
    parser = HfArgumentParser(
        (*dataclass_types, ConfigFileArguments),
        prog=command,
        usage=f"{command} [--config FILE | {presets}] [--FLAG VALUE ...]   (--help lists the flags)",
    )
    # Without a GPU the default is the CPU, before the TrainingArguments checks run (e.g. --bf16 is
    # then checked against the CPU: `hf-genrec estimate-memory --bf16 true` plans a GPU job from a laptop).
    parser.set_defaults(**(defaults or {}), **({} if torch.cuda.is_available() else {"use_cpu": True}))
    if not argv:
        logger.info("no arguments: running the %r preset (--config %s)", DEFAULT_PRESET, DEFAULT_PRESET)
        argv = ["--config", DEFAULT_PRESET]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    config = pre.parse_known_args(argv)[0].config
    known = {f.name for t in dataclass_types for f in dataclasses.fields(t) if f.init}
    try:
        if config is not None:
            argv = config_to_flags(*resolve_config(recipe, config), known) + argv
        *parsed, _config, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except (InputError, MissingFileError, ValueError) as err:
        # Raised while reading the arguments (a config file, a TrainingArguments check): an argument error.
        parser.error(" ".join(str(err).split()))
    if remaining:
        parser.error(f"unrecognized arguments: {' '.join(remaining)}")
    *recipe_args, targs = parsed
    set_seed(targs.seed)
    return (*recipe_args, targs)
