"""The ``hf-genrec`` command: dispatch, ``--config`` files and presets layered under the flags, and the
error policy (input mistakes in one line, bugs with their traceback)."""

from __future__ import annotations

import configparser
import json
import pathlib

import numpy as np
import pytest

from hf_genrec.cli.errors import run_cli
from hf_genrec.cli.main import cli
from hf_genrec.data import make_synthetic_sequences
from hf_genrec.recipes import etegrec, hllm, itemid, sasrec
from hf_genrec.recipes.config import preset_names
from hf_genrec.utils.errors import GenRecError, InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = {"etegrec": etegrec, "hllm": hllm, "itemid": itemid, "sasrec": sasrec}


def exit_status(capsys, fn, *args) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        fn(*args)
    return stopped.value.code, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


def test_the_config_file_overrides_the_defaults_and_the_flags_override_the_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("codebook_size: 8\nrqvae_hidden_dims: [48, 24]\nlearning_rate: 3.0e-3\ngroup_by_length: true\n")
    margs, dargs, targs = etegrec.parse_args(["--config", str(config), "--codebook_size", "12"])
    assert margs.codebook_size == 12  # the flag wins over the file
    assert margs.rqvae_hidden_dims == [48, 24] and targs.learning_rate == 3e-3 and dargs.group_by_length is True
    assert margs.codebook_dim == 128 and targs.weight_decay == 0.05  # RQVAEConfig's default; the recipe's default
    assert etegrec.parse_args(["--codebook_size", "12"])[0].rqvae_hidden_dims == [512, 256]


def test_no_arguments_runs_the_embedded_preset_and_arguments_alone_do_not():
    margs, dargs, targs = etegrec.parse_args([])
    assert (margs.codebook_size, margs.suffix_size, margs.rqvae_hidden_dims) == (16, 32, [64])
    assert dargs.sasrec_recipe == "basic" and targs.output_dir == "outputs/etegrec-default"
    assert dargs.finetune_epochs == 24  # the recipe default (4) stops its fine-tuning while validation still climbs
    margs, dargs, targs = etegrec.parse_args(["--dataset_dir", "somewhere"])
    assert margs.codebook_size == 256 and dargs.sasrec_recipe == "reference" and targs.output_dir == "outputs/etegrec"
    assert etegrec.parse_args(["--config", "embedded", "--dataset_dir", "x"])[0].codebook_size == 16


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_shipped_preset_parses_for_its_recipe(recipe):
    names = preset_names(recipe)
    assert "embedded" in names
    for name in names:
        *_, run = RECIPES[recipe].parse_args(["--config", name])
        assert run.output_dir.startswith("outputs/")


@pytest.mark.parametrize(
    "text, message",
    [
        ("codebook_sise: 8\n", "unknown keys ['codebook_sise']"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("codebook_size: null\n", "codebook_size must be a value"),
        ("codebook_size: [\n", "not valid YAML"),
        ("codebook_size: many\n", "invalid int value: 'many'"),
    ],
)
def test_a_bad_config_file_is_one_argument_error_naming_the_problem(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    status, err = exit_status(capsys, cli, ["train", "etegrec", "--config", str(config)])
    assert status == 2 and len(error_lines(err)) == 1 and message in error_lines(err)[0], err
    assert "Traceback" not in err


def test_an_unknown_preset_names_the_shipped_ones(capsys):
    status, err = exit_status(capsys, cli, ["train", "hllm", "--config", "nope"])
    assert status == 2 and "no preset of that name for hllm (presets: embedded)" in err


def test_dispatch_refuses_unknown_commands_and_families(capsys):
    status, err = exit_status(capsys, cli, ["trian"])
    assert status == 2 and "unknown command 'trian'" in err
    status, err = exit_status(capsys, cli, ["train", "bert4rec"])
    assert status == 2 and "unknown command 'bert4rec'" in err and "etegrec, hllm, itemid, sasrec" in err
    with pytest.raises(SystemExit) as stopped:
        cli(["--help"])
    assert stopped.value.code == 0 and "estimate-memory" in capsys.readouterr().out


def test_library_errors_are_one_line_and_other_exceptions_keep_their_traceback(capsys, monkeypatch):
    monkeypatch.delenv("HF_GENREC_TRACEBACK", raising=False)

    def input_mistake(argv):
        raise InputError("the data has\n no users")

    status, err = exit_status(capsys, run_cli, input_mistake, "hf-genrec x", [])
    assert status == 2 and err.strip() == "hf-genrec x: error: the data has no users"

    def bug(argv):
        raise ValueError("shape mismatch deep inside a dependency")

    with pytest.raises(ValueError, match="shape mismatch"):  # not turned into a one-line exit
        run_cli(bug, "hf-genrec x", [])
    monkeypatch.setenv("HF_GENREC_TRACEBACK", "1")
    with pytest.raises(InputError):
        run_cli(input_mistake, "hf-genrec x", [])


def test_the_library_error_classes_are_also_the_builtin_ones_callers_catch():
    from hf_genrec.utils.errors import CheckpointError, MissingFileError, UnknownItemError

    assert issubclass(InputError, ValueError) and issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(CheckpointError, OSError) and issubclass(UnknownItemError, KeyError)
    assert all(issubclass(c, GenRecError) for c in (InputError, MissingFileError, CheckpointError, UnknownItemError))


def test_one_console_script_and_the_presets_ship_with_the_package():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = [line for line in setup["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    assert scripts == ["hf-genrec = hf_genrec.cli.main:cli"]
    shipped = setup["options.package_data"]["hf_genrec"]
    assert "recipes/presets/*.yaml" in shipped and "evaluate_metrics/ranking/*.py" in shipped


def test_train_sasrec_saves_the_model_its_item_table_and_both_protocols(tmp_path, capsys):
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps(make_synthetic_sequences(num_users=80, num_items=25, seed=2)))
    out = tmp_path / "run"
    cli(["train", "sasrec", "--config", "embedded", "--dataset_dir", str(data), "--output_dir", str(out),
         "--sasrec_epochs", "2", "--disable_tqdm", "true"])
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert {"exclude_seen/ndcg@10", "all_items/ndcg@10"} <= set(metrics)
    assert 0 <= metrics["exclude_seen/ndcg@10"] <= metrics["exclude_seen/recall@10"] <= 1
    from transformers import AutoModel

    from hf_genrec import SASRecModel

    model = AutoModel.from_pretrained(out / "final").eval()
    assert isinstance(model, SASRecModel) and model.item_map.num_items == 25
    table = np.load(out / "item_embeddings.npy")
    assert table.shape == (25, 32) and np.allclose(table, model.item_embeddings().numpy())
    card = (out / "final" / "README.md").read_text()
    assert "genrec_sasrec" in card and f"{metrics['exclude_seen/ndcg@10']:.4f}"[:5] in card
