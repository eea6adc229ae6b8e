"""Errors a user's input can raise anywhere in the package (models, data, training, serving)."""

from __future__ import annotations


class UnknownItemError(KeyError):
    """An item id that the mapping (and so the model) has never seen."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class EmptyHistoryError(ValueError):
    """A user history with no items: there is nothing to condition a recommendation on."""
