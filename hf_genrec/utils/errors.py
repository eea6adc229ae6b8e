"""The library's error classes: every mistake in a user's input (an argument, a config field, a
file, a checkpoint) that hf_genrec detects is raised as a :class:`GenRecError`.

Each class also derives from the built-in exception a Python user would catch for that kind of
problem (``ValueError``, ``FileNotFoundError``, ``KeyError``, ...), so ``except ValueError`` keeps
working. The ``hf-genrec`` command prints a :class:`GenRecError` as one line and exits with status
2; any other exception is a bug (ours or a dependency's) and keeps its traceback.
"""

from __future__ import annotations


class GenRecError(Exception):
    """Base class: a problem with the user's input that hf_genrec detected and named."""


class InputError(GenRecError, ValueError):
    """A value that is not valid: an argument, a config field, a tensor's shape, a file's contents."""


class MissingFileError(GenRecError, FileNotFoundError):
    """A file or folder the user named (or one that must lie beside it) does not exist."""


class OutputExistsError(GenRecError, FileExistsError):
    """An output path that holds something this command would not overwrite."""


class CheckpointError(GenRecError, OSError):
    """A checkpoint that cannot be loaded: missing, incomplete, or not matching its config."""


class MissingDependencyError(GenRecError, ImportError):
    """An optional package a requested feature needs is not installed (the message names the extra)."""


class UnknownItemError(GenRecError, KeyError):
    """An item id that the mapping (and so the model) has never seen."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class EmptyHistoryError(InputError):
    """A user history with no items: there is nothing to condition a recommendation on."""
