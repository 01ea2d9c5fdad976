"""Keyed pseudonyms for user ids: what streamtune keeps instead of the id itself.

A user id becomes ``HMAC-SHA256(key, user_id)`` (RFC 2104) as soon as an event is decoded, before
anything is kept: the replay buffer and the holdout window tag their rows with it, and no log
line, manifest or version file holds a raw user id. A keyed hash rather than a plain one because
user ids are guessable (integers, e-mail addresses): without the key, hashing every candidate id
does not link a pseudonym back to its user. This is pseudonymisation in the sense of GDPR
Art. 4(5): the additional information (the key) has to be kept apart from the data.

The key is ``STREAMTUNE_PSEUDONYMISE_KEY``. Without one, a random 256-bit key is generated once
and kept in the checkpoint store (``pseudonymise.key``, mode 0600), so the trainer and
``streamtune forget`` derive the same pseudonyms across restarts. That default keeps raw ids out
of everything streamtune writes, but the key then sits next to the data it protects: production
deployments set the variable from a secret store instead.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamtune.errors import ConfigurationError

logger = logging.getLogger(__name__)

KEY_FILE = "pseudonymise.key"
_KEY_BYTES = 32
_REMEMBERED = 100_000  # pseudonyms kept per process (about 20 MB at most)


class Pseudonymiser:
    """Maps user ids to stable pseudonyms (64 hex characters) under one secret key.

    >>> pseudonymiser = Pseudonymiser(b"0123456789abcdef")
    >>> pseudonym = pseudonymiser.pseudonym("user-42")
    >>> len(pseudonym), pseudonym == pseudonymiser.pseudonym("user-42")
    (64, True)
    >>> pseudonym == Pseudonymiser(b"another key, another mapping").pseudonym("user-42")
    False
    >>> pseudonymiser.pseudonym(None) is None
    True
    """

    def __init__(self, key: bytes, remembered: int = _REMEMBERED) -> None:
        if len(key) < 16:
            raise ConfigurationError("the pseudonymisation key must be at least 16 bytes long")
        self._key = key
        # Active users send many events: an HMAC per event was a tenth of the ingest thread's
        # time. The ids here are only ever the raw ids of events just decoded (in memory anyway).
        self._remembered = functools.lru_cache(maxsize=remembered)(self._digest)

    def pseudonym(self, user_id: str | None) -> str | None:
        """The pseudonym of ``user_id`` (None stays None: an event without a user)."""
        return None if user_id is None else self._remembered(user_id)

    def _digest(self, user_id: str) -> str:
        # surrogatepass: a decoded event never holds lone surrogates, but this must not raise.
        message = user_id.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=***)"

    @classmethod
    def for_store(cls, configured_key: str | None, store_root: Path) -> Pseudonymiser:
        """The configured key, else the store's own key (generated on first use)."""
        if configured_key is not None:
            return cls(configured_key.encode("utf-8"))
        return cls(_store_key(Path(store_root)))


def user_tag(pseudonym: str | None) -> int:
    """A 64-bit signed tag of a pseudonym for compact per-row storage (0: no user).

    Two users share a tag with probability 2**-64 per pair; the only effect of a collision is
    that forgetting one user also forgets the other's rows.

    >>> user_tag(None), user_tag("00" * 32), user_tag("ff" * 32)
    (0, 0, -1)
    """
    if pseudonym is None:
        return 0
    return int.from_bytes(bytes.fromhex(pseudonym[:16]), "little", signed=True)


def user_tags(pseudonyms: Sequence[str | None]) -> np.ndarray:
    """:func:`user_tag` of each pseudonym, as an int64 array."""
    return np.fromiter((user_tag(pseudonym) for pseudonym in pseudonyms), dtype=np.int64, count=len(pseudonyms))


def _store_key(root: Path) -> bytes:
    """Read the store's key, creating it first if no process has yet.

    The key is written to a temporary file and hard-linked into place, so a concurrent reader
    never sees a partial key and two processes creating it at once agree on one of them.
    """
    path = root / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    # Not a ``.tmp-`` name: a starting trainer sweeps those, and could do so mid-creation.
    temp = root / f".{KEY_FILE}.{uuid.uuid4().hex[:8]}"
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_hex(_KEY_BYTES).encode())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
            logger.warning(
                "no STREAMTUNE_PSEUDONYMISE_KEY: generated a pseudonymisation key in %s; "
                "set the variable from a secret store in production",
                path,
            )
        except FileExistsError:  # another process won the race; use its key
            pass
    finally:
        temp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < 16:
        raise ConfigurationError(f"{path} holds no usable key: delete it to generate a new one")
    return key
