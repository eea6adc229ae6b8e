"""Errors of the data layer: each names the file, the line and the problem."""


class InteractionFormatError(ValueError):
    """Raised when an interaction file cannot be read as the format it claims to be."""


class ItemTextFormatError(ValueError):
    """Raised when an item text file cannot be read as the format it claims to be."""
