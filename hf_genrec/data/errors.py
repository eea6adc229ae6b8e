"""Errors of the data layer: each names the file, the line and the problem."""

from ..utils.errors import InputError


class InteractionFormatError(InputError):
    """Raised when an interaction file cannot be read as the format it claims to be."""


class ItemTextFormatError(InputError):
    """Raised when an item text file cannot be read as the format it claims to be."""
