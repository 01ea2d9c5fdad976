"""Errors of the hybrid model family."""

from __future__ import annotations

from streamtune.errors import StreamtuneError


class HybridModelError(StreamtuneError):
    """A hybrid snapshot, delta or state does not fit the model it is applied to."""
