"""Folders written whole or not at all: stage in a temporary sibling, then rename into place.

A save killed half-way (out of memory, a pre-empted job, Ctrl-C) must not leave a folder that
loads as if it were complete. :func:`staged_folder` writes into ``.<name>.tmp-*`` beside the
target, flushes every file to disk, and renames the finished folder over the target; a kill
leaves the previous folder (or, in the instant between the two renames of a replacement, none),
never a mixture. Saves nested inside a staged folder (a model's ``save_pretrained`` called by a
trainer that stages the whole checkpoint) write straight into the outer stage.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator

from .errors import InputError

#: weight files a new save replaces as a whole (``model.safetensors``, its shards and index, and
#: peft's ``adapter_model.*``): never carried over from the folder being replaced, where they
#: would mix two saves' weights
_WEIGHT_FILE = re.compile(
    r"^(model|pytorch_model|adapter_model)(\.[\w-]+)?(-\d+-of-\d+)?\.(safetensors|bin)(\.index(\.[\w-]+)?\.json)?$"
)

_active = threading.local()


def _active_stages() -> list[str]:
    if not hasattr(_active, "stages"):
        _active.stages = []
    return _active.stages


def _inside_a_stage(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == s or real.startswith(s + os.sep) for s in _active_stages())


def _siblings(target: str, kind: str) -> list[str]:
    parent, name = os.path.split(target)
    return sorted(glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.{kind}-*")))


def _owner_tag() -> str:
    """``<host>-<pid>``: who writes a stage, so a save only tidies stages of dead processes."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _is_abandoned(stage: str) -> bool:
    """A stage whose writer (named in it, see :func:`_owner_tag`) is a dead process on this host."""
    match = re.search(r"\.tmp-(.+)-(\d+)-[^-]*$", os.path.basename(stage))
    if not match or match.group(1) != socket.gethostname():
        return False  # another host's (on shared storage) or an unknown writer: leave it
    pid = int(match.group(2))
    if pid == os.getpid():
        return stage not in _active_stages()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def interrupted_replacements(path: str) -> list[str]:
    """Previous versions of ``path`` that a replacement set aside and was killed before removing."""
    return _siblings(os.path.abspath(path), "old")


def replace_folder(src: str, dst: str) -> None:
    """Move the complete folder ``src`` to ``dst``, replacing what was there (the old one is removed
    only after the new one is in place; until then it is ``.<name>.old-<pid>`` beside it)."""
    dst = os.path.abspath(dst)
    if os.path.exists(dst):
        parent, name = os.path.split(dst)
        old = os.path.join(parent, f".{name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)


def recover_interrupted_replacement(path: str) -> None:
    """Tidy what a save killed mid-way left beside ``path``: its stages are removed; and if it was
    killed between the two renames of a replacement (``path`` gone, the previous folder set aside
    as ``.<name>.old-*``), the previous folder is put back."""
    target = os.path.abspath(path)
    for stale in _siblings(target, "tmp"):
        if _is_abandoned(os.path.realpath(stale)):
            shutil.rmtree(stale, ignore_errors=True)
    olds = _siblings(target, "old")
    if olds and not os.path.exists(target):
        os.rename(olds.pop(), target)
    for stale in olds:
        shutil.rmtree(stale, ignore_errors=True)


def flush_to_disk(folder: str) -> None:
    """fsync every file and folder under ``folder``, so the rename publishes data, not empty files
    (after a power cut, a renamed folder whose files were still in the page cache reads as zeros)."""
    for root, _, files in os.walk(folder):
        for name in files:
            if not stat.S_ISREG(os.lstat(os.path.join(root, name)).st_mode):
                continue  # a symbolic link (perhaps dangling), a FIFO: nothing of ours to flush
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _carry_over(old: str, stage: str) -> None:
    """Link into ``stage`` what ``old`` holds that the new save did not write (files a caller adds
    beside a checkpoint: a text tokenizer, notes, a Hub clone's ``.git``), except stale weight files."""
    for name in os.listdir(old):
        src, dst = os.path.join(old, name), os.path.join(stage, name)
        if os.path.lexists(dst) or _WEIGHT_FILE.match(name):
            continue
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(src, dst)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(src, dst, follow_symlinks=False)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike, keep_other_files: bool = True) -> Iterator[str]:
    """Yield a temporary folder to write ``path``'s new content into; on success it replaces ``path``.

    ``keep_other_files``: files and folders already in ``path`` that the new content does not
    contain are kept (as ``save_pretrained`` keeps what it does not write), except stale weight
    files; with False the folder is replaced as it was staged. On an exception the stage is removed
    and ``path`` is untouched. What an earlier killed save of ``path`` left is tidied first
    (:func:`recover_interrupted_replacement`). Inside another stage (a nested save), this writes to
    ``path`` directly.
    """
    path = os.fspath(path)
    if _inside_a_stage(path):
        os.makedirs(path, exist_ok=True)
        yield path
        return
    # A symbolic link is followed: the folder it names is replaced, beside itself, and the link stays.
    target = os.path.realpath(path)
    if os.path.ismount(target):
        raise InputError(
            f"{path} is a mount point, which cannot be replaced by a rename: save into a folder inside it"
        )
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    recover_interrupted_replacement(target)
    stage = tempfile.mkdtemp(prefix=f".{name}.tmp-{_owner_tag()}-", dir=parent)
    os.chmod(stage, 0o755)  # mkdtemp makes it private to its owner; a saved folder is an ordinary one
    stages, real_stage = _active_stages(), os.path.realpath(stage)
    stages.append(real_stage)
    try:
        yield stage
        if keep_other_files and os.path.isdir(target):
            _carry_over(target, stage)
        flush_to_disk(stage)
        replace_folder(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        stages.remove(real_stage)


def _write_file(path: str | os.PathLike, write, binary: bool = False) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk and rename it over
    ``path``: a kill leaves the previous file or the new one, never a truncated one."""
    path = os.fspath(path)
    parent, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as JSON to ``path``, whole or not at all (these files mark finished stages)."""
    _write_file(path, lambda f: json.dump(obj, f, indent=2))


def save_npy(path: str | os.PathLike, array) -> None:
    """``numpy.save(path, array)``, whole or not at all (a truncated table would be read back later)."""
    import numpy as np

    _write_file(path, lambda f: np.save(f, array), binary=True)
