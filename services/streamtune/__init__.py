"""streamtune: keep a transformer model fresh from a live event stream."""

__version__ = "0.1.0"
