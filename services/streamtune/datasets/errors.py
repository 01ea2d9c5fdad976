"""Named errors of the dataset converters."""

from streamtune.errors import StreamtuneError


class DatasetError(StreamtuneError):
    """A dataset directory or file is missing, of an unknown layout, or malformed.

    The message names the file (and line, where there is one) and says what was expected.
    """
