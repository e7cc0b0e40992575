"""The one error every step of an import raises: the message names the file, the problem and the fix."""

from __future__ import annotations


class TmImportError(ValueError):
    """A Teachable Machine export that cannot be turned into a bundle; the message says why and what to do."""
