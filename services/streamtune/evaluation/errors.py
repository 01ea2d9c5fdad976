"""Named errors of the evaluation tools."""

from streamtune.errors import StreamtuneError


class EvaluationError(StreamtuneError):
    """Scores or labels are unusable, or an optional evaluation dependency is missing."""
