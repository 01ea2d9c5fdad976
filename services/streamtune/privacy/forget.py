"""Requests to forget a user, kept in the checkpoint store until every trainer honours them.

``streamtune forget USER_ID`` records the user's pseudonym as a file under ``<store>/forget/``;
the trainer reads the directory between micro-batches and drops the user's rows from its replay
buffer and holdout window, so the next version's ``stream_state`` no longer holds them. The
requests stay: a trainer that starts later, or reloads an older version after a rollback,
applies them again to whatever it loads. Only pseudonyms are written, never the user id.

What forgetting does not do (see the README's privacy notes): it does not retrain the weights
(what a model learned from a user's events is not undone), it does not rewrite versions
already published (their holdout rows go when retention removes them), and it does not touch
the events topic, which belongs to the producers.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

FORGET_DIR = "forget"
_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")


class ForgetRequests:
    """The store's directory of forget requests, one file per pseudonym."""

    def __init__(self, store_root: Path) -> None:
        self.directory = Path(store_root) / FORGET_DIR

    def request(self, pseudonym: str) -> bool:
        """Record a request durably; False if one for this pseudonym existed already."""
        if not _PSEUDONYM.match(pseudonym):
            raise ValueError("a pseudonym is 64 lowercase hex characters")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / pseudonym
        if path.exists():
            return False
        body = json.dumps({"pseudonym": pseudonym, "requested_at": datetime.now(UTC).isoformat()}).encode()
        temp = self.directory / f".{pseudonym}.{uuid.uuid4().hex[:8]}"
        with open(temp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return True

    def pseudonyms(self) -> set[str]:
        """Every pseudonym a request names (files with other names are ignored)."""
        try:
            entries = os.scandir(self.directory)
        except FileNotFoundError:
            return set()
        with entries:
            return {entry.name for entry in entries if _PSEUDONYM.match(entry.name) and entry.is_file()}


class ForgetWatch:
    """The requests one process has yet to apply; reads the directory at most every ``interval_s``."""

    def __init__(self, requests: ForgetRequests, interval_s: float = 1.0) -> None:
        self._requests = requests
        self._interval_s = interval_s
        self._applied: set[str] = set()
        self._next_read = 0.0

    def new(self) -> set[str]:
        """Pseudonyms requested since the last call (empty between reads)."""
        now = time.monotonic()
        if now < self._next_read:
            return set()
        self._next_read = now + self._interval_s
        fresh = self._requests.pseudonyms() - self._applied
        self._applied |= fresh
        return fresh

    def everything(self) -> set[str]:
        """Every pseudonym ever requested (for state loaded from a version written before them)."""
        self._applied |= self._requests.pseudonyms()
        return set(self._applied)
