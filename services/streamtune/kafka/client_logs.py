"""librdkafka's log lines through Python logging, each distinct one at most once a minute.

Left to itself, librdkafka writes straight to stderr, and a wrong broker address produces a
connection failure line every few milliseconds: ~200 lines before the command's own one-line
error. Routed here they take the configured format (text or JSON) and repeat only once per
``interval_s``, with a count of what was held back.
"""

from __future__ import annotations

import logging
import re
import time

LIBRDKAFKA_LOGGER = logging.getLogger("streamtune.kafka.librdkafka")
# Digits vary between otherwise identical lines ("after 0ms", thread ids, timestamps).
_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Pass each distinct message (digits ignored) at most once per ``interval_s``.

    >>> repeat = RepeatFilter(interval_s=60)
    >>> def record(text):
    ...     return logging.LogRecord("x", logging.ERROR, __file__, 1, text, None, None)
    >>> [repeat.filter(record(f"connect failed after {n}ms")) for n in range(3)]
    [True, False, False]
    >>> repeat.filter(record("another problem"))
    True
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = _DIGITS.sub("#", record.getMessage())
        now = time.monotonic()
        last, held = self._last.get(key, (-float("inf"), 0))
        if now - last < self.interval_s:
            self._last[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it)"
            record.args = None
        self._last[key] = (now, 0)
        return True


LIBRDKAFKA_LOGGER.addFilter(RepeatFilter())
