"""Saves are whole or absent: a save killed at any point leaves the previous folder (or none)."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_genrec import ItemIdMap, LlamaRecForCodeGeneration
from hf_genrec.utils.atomic import staged_folder
from hf_genrec.utils.checkpoints import last_complete_checkpoint, require_complete_checkpoint

from .conftest import tiny_recommender

ROOT = Path(__file__).resolve().parents[1]


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_stage_leaves_the_folder_as_it_was_and_no_stage_behind(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "config.json").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with staged_folder(target) as stage:
            (Path(stage) / "config.json").write_text("new")
            raise RuntimeError("disk full")
    assert listing(target) == {"config.json": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_replacement_keeps_other_files_but_never_the_old_weights(tmp_path):
    target = tmp_path / "ckpt"
    (target / "tokenizer").mkdir(parents=True)
    (target / ".git").mkdir()
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                 "model.fp16.safetensors", "config.json", "notes.txt", "tokenizer/vocab.txt", ".gitattributes",
                 ".git/HEAD"):
        (target / name).write_text("old " + name)
    with staged_folder(target) as stage:
        (Path(stage) / "model.safetensors").write_text("new weights")
        (Path(stage) / "config.json").write_text("new config")
    assert listing(target) == {
        "config.json": b"new config", "model.safetensors": b"new weights",
        "notes.txt": b"old notes.txt", "tokenizer/vocab.txt": b"old tokenizer/vocab.txt",
        ".gitattributes": b"old .gitattributes", ".git/HEAD": b"old .git/HEAD",
    }
    with staged_folder(target, keep_other_files=False) as stage:
        (Path(stage) / "config.json").write_text("alone")
    assert listing(target) == {"config.json": b"alone"}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_symlinked_folder_is_replaced_where_the_link_points_and_the_link_stays(tmp_path):
    real = tmp_path / "disk" / "final"
    real.mkdir(parents=True)
    (real / "config.json").write_text("old")
    link = tmp_path / "final"
    link.symlink_to(real)
    (real / "dangling").symlink_to(tmp_path / "nowhere")  # carried over, never followed
    with staged_folder(link) as stage:
        (Path(stage) / "config.json").write_text("new")
    assert link.is_symlink() and (link / "config.json").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["final"]
    assert (real / "dangling").is_symlink()


def test_a_nested_save_writes_into_the_outer_stage(tmp_path):
    with staged_folder(tmp_path / "ckpt") as outer:
        with staged_folder(Path(outer) / "item_tokenizer") as inner:
            assert inner == str(Path(outer) / "item_tokenizer")
            (Path(inner) / "model.safetensors").write_text("w")
        assert not (tmp_path / "ckpt").exists()  # nothing is visible before the outer stage ends
    assert listing(tmp_path / "ckpt") == {"item_tokenizer/model.safetensors": b"w"}


def test_a_save_killed_between_the_two_renames_is_named_at_load_and_recovered_by_the_next(tmp_path):
    target = tmp_path / "ckpt"
    old = tmp_path / ".ckpt.old-12345"  # the previous folder, set aside just before the kill
    old.mkdir()
    (old / "config.json").write_text("previous")
    host = socket.gethostname()
    (tmp_path / f".ckpt.tmp-{host}-{dead_pid()}-abcd1234").mkdir()  # the new one, its writer killed
    alive = tmp_path / f".ckpt.tmp-{host}-{os.getppid()}-efgh5678"  # another live process's stage
    alive.mkdir()
    with pytest.raises(FileNotFoundError, match=r"ckpt does not exist but .*\.ckpt\.old-12345 does: a save was killed"):
        LlamaRecForCodeGeneration.from_pretrained(target)
    with staged_folder(target) as stage:
        (Path(stage) / "model.safetensors").write_text("new")
    assert listing(target) == {"config.json": b"previous", "model.safetensors": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ckpt", alive.name])


# Saves a model into argv[1] and SIGKILLs itself at the point argv[2] names: after the weights
# (before the item map), or after everything (before the staged folder is renamed into place).
KILLED_SAVE = """
import os, signal, sys
import hf_genrec.utils.atomic as atomic
from tests.conftest import tiny_recommender
from hf_genrec import ItemIdMap

die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "after_weights":  # the weights are written; the item map would come next
    ItemIdMap.save = die
else:
    atomic.replace_folder = die
model = tiny_recommender(num_items=30, use_lora=False, seed=1)
model.set_item_map(ItemIdMap([f"new-{i}" for i in range(30)]))
model.save_pretrained(sys.argv[1])
"""


@pytest.mark.parametrize("kill_point", ["after_weights", "before_rename"])
@pytest.mark.parametrize("existing", [False, True])
def test_a_save_killed_midway_leaves_the_previous_checkpoint_or_none(tmp_path, kill_point, existing):
    target = tmp_path / "final"
    if existing:
        previous = tiny_recommender(num_items=30, use_lora=False, seed=0)
        previous.set_item_map(ItemIdMap([f"old-{i}" for i in range(30)]))
        previous.save_pretrained(target)
        before = listing(target)
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(target), kill_point], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    if not existing:
        assert not target.exists()
        return
    assert listing(target) == before
    loaded = LlamaRecForCodeGeneration.from_pretrained(target)
    assert loaded.item_map.to_original(1) == "old-0"
    assert torch.equal(loaded.scid_projector.weight, previous.scid_projector.weight)
    # The next save tidies what the killed one left and writes over the previous checkpoint.
    model = tiny_recommender(num_items=30, use_lora=False, seed=1)
    model.set_item_map(ItemIdMap([f"new-{i}" for i in range(30)]))
    model.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]
    assert LlamaRecForCodeGeneration.from_pretrained(target).item_map.to_original(1) == "new-0"


def test_the_config_lists_what_the_folder_must_hold_and_a_missing_file_is_named(tmp_path):
    from transformers import LlamaConfig, LlamaModel

    from .conftest import TINY_LLAMA, unique_codes

    LlamaModel(LlamaConfig(**{k: v for k, v in TINY_LLAMA.items() if k != "model_type"})).save_pretrained(tmp_path / "llama")
    model = LlamaRecForCodeGeneration.from_backbone(
        str(tmp_path / "llama"), num_items=30, codebook_size=4, suffix_size=4, codebook_dim=8, semantic_dim=16,
        lora_r=4, lora_alpha=8,
    )
    model.set_item_codes(unique_codes(30))
    model.save_pretrained(tmp_path / "ckpt")  # adapter-only: the base is reloaded from tmp_path / "llama"
    files = json.loads((tmp_path / "ckpt" / "config.json").read_text())["checkpoint_files"]
    assert files == ["backbone/adapter_config.json", "backbone/adapter_model.safetensors", "item_map.json"]
    LlamaRecForCodeGeneration.from_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "backbone" / "adapter_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no backbone/adapter_config.json, which its config says"):
        LlamaRecForCodeGeneration.from_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["checkpoint_files"] = ["../../etc/passwd"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a path inside the folder"):
        LlamaRecForCodeGeneration.from_pretrained(tmp_path / "ckpt")


def test_resuming_from_a_checkpoint_the_trainer_did_not_finish_is_refused(tmp_path):
    for step, complete in ((10, True), (20, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_text("w")
        if complete:
            (folder / "trainer_state.json").write_text('{"global_step": 10}')
    require_complete_checkpoint(str(tmp_path / "checkpoint-10"))
    incomplete = r"checkpoint-20 is incomplete: it has no whole trainer_state.json.*resume from .*checkpoint-10"
    with pytest.raises(ValueError, match=incomplete):
        require_complete_checkpoint(str(tmp_path / "checkpoint-20"))
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text('{"global_step": 2')  # killed mid-write
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    os.remove(tmp_path / "checkpoint-10" / "trainer_state.json")
    assert last_complete_checkpoint(str(tmp_path)) is None
    with pytest.raises(ValueError, match="there is no complete one beside it"):
        require_complete_checkpoint(str(tmp_path / "checkpoint-20"))
