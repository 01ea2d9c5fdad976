"""Events as JSON Lines: one JSON object per line, UTF-8, in stream order."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from streamtune.datasets.errors import DatasetError

logger = logging.getLogger(__name__)


def write_jsonl(events: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Write events to ``path``, one JSON object per line.

    The file is written under a temporary name and renamed when complete, so an interrupted
    conversion never leaves a truncated file that looks finished.

    Parameters
    ----------
    events
        Events in stream order; consumed lazily, so a generator of any length is fine.
    path
        Destination file; its parent directory is created if missing.

    Returns
    -------
    int
        The number of events written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    count = 0
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as out:
            for event in events:
                out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
                out.write("\n")
                count += 1
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    logger.info("wrote %d events to %s", count, target)
    return count


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the events of a JSON Lines file in file order, skipping blank lines.

    Raises
    ------
    DatasetError
        If the file is missing or a line is not a JSON object.
    """
    source = Path(path)
    if not source.is_file():
        raise DatasetError(f"{source}: no such events file; create one with `streamtune datasets`")
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{source}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(event, dict):
                raise DatasetError(f"{source}:{number}: expected a JSON object per line")
            yield event
