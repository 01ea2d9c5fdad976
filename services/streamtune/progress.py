"""Progress of a long job: a bar with rate and ETA on a terminal, a periodic log line elsewhere
(a file, a container log), so a job of an hour never goes silent for minutes."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressOutput:
    """Where progress goes: a bar on ``stream`` when it is a terminal, else ``log`` (the module's
    logger by default) every ``every_s`` seconds."""

    every_s: float = 30.0
    stream: TextIO | None = None
    log: Callable[[str], object] | None = None
    enabled: bool = True


class Progress:
    """Counts work done; shows it as a tqdm bar on a terminal, else as a periodic log line.

    >>> lines = []
    >>> with Progress("converting", 4, "events", ProgressOutput(every_s=0, log=lines.append)) as progress:
    ...     progress.update(3)
    >>> lines[0].split(",")[0]
    'converting: 3/4 events (75%)'
    """

    def __init__(
        self, what: str, total: int | None = None, unit: str = "events", output: ProgressOutput | None = None
    ) -> None:
        output = output or ProgressOutput()
        stream = output.stream or sys.stderr
        self.what, self.total, self.unit, self.every_s = what, total, unit, output.every_s
        self.done = 0
        self._log = output.log or logger.info
        self._bar = tqdm(total=total, desc=what, unit=f" {unit}", file=stream) if _is_terminal(stream) else None
        if not output.enabled:
            self._bar, self.every_s = None, float("inf")
        self._started = self._logged = time.monotonic()

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif time.monotonic() - self._logged >= self.every_s:
            self._logged = time.monotonic()
            self._log(self.describe())

    def describe(self) -> str:
        """E.g. ``replay: 1200/5000 events (24%), 240/s, ETA 16 s``."""
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.what}: {self.done}/{self.total} {self.unit}" if self.total else f"{self.what}: {self.done}"
        if self.total:
            text += f" ({self.done / self.total:.0%})"
            if rate > 0 and self.done < self.total:
                text += f", {rate:.0f}/s, ETA {(self.total - self.done) / rate:.0f} s"
        elif rate > 0:
            text += f" {self.unit}, {rate:.0f}/s"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def tracked(items: Iterable[T], progress: Progress) -> Iterator[T]:
    """``items`` unchanged, counting each one."""
    for item in items:
        yield item
        progress.update()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
