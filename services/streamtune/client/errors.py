"""Exceptions of the Python client; each carries what the server said."""

from __future__ import annotations


class StreamtuneClientError(Exception):
    """Base class of every error the client raises."""


class ServerUnreachableError(StreamtuneClientError):
    """No HTTP answer: connection refused, reset, or the timeout passed (after the retries)."""


class ServerError(StreamtuneClientError):
    """The server answered with an error status; ``message`` is its explanation.

    Attributes
    ----------
    status
        The HTTP status code.
    message
        The server's ``detail``: a sentence, or for 422 the problems joined with "; ".
    retry_after_s
        The server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidRequestError(ServerError):
    """422/413/415: the request itself is wrong; retrying it will not help."""


class AuthenticationError(ServerError):
    """401/403: no admin token, a wrong one, or the admin API is disabled on the server."""


class NotFoundError(ServerError):
    """404: e.g. pinning a version the store does not hold."""


class OverloadedError(ServerError):
    """429/503 still answered after the client's last retry: the server is at capacity or has
    no model loaded yet."""


def error_for(status: int, message: str, retry_after_s: float | None) -> ServerError:
    """The most specific :class:`ServerError` for ``status``."""
    kind: type[ServerError] = ServerError
    if status in (413, 415, 422):
        kind = InvalidRequestError
    elif status in (401, 403):
        kind = AuthenticationError
    elif status == 404:
        kind = NotFoundError
    elif status in (429, 503):
        kind = OverloadedError
    return kind(status, message, retry_after_s)
