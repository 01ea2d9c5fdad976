"""Logging for every streamtune process: readable text lines, or one JSON object per line.

Configured once, in the entry point. The code keeps using ``logging.getLogger(__name__)``;
structlog's :class:`~structlog.stdlib.ProcessorFormatter` renders every record of the root
logger, so uvicorn's records (which we route to the root) look the same as ours. Fields passed
with ``extra={...}`` (version, partition, offsets) become fields of the JSON object.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Literal, TextIO

import structlog

LogFormat = Literal["text", "json"]
# uvicorn configures these itself unless told not to; they must reach the root handler instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Libraries that log every request or every load at info level: quiet unless debugging.
CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3")
_HANDLER_NAME = "streamtune"


def _formatter(log_format: LogFormat) -> logging.Formatter:
    pre_chain: list[structlog.types.Processor] = [
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        _drop_color_message,
    ]
    if log_format == "json":
        renderers: list[structlog.types.Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        renderers = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=False, timestamp_key="time", pad_event_to=0),
        ]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=renderers)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (a test may swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "info", log_format: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Send every log record (ours, uvicorn's, libraries') to ``stream`` (default: stderr) in
    ``log_format`` at ``level`` and above; calling it again replaces the handler it installed
    (handlers others installed, such as pytest's, are left alone)."""
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(_formatter(log_format))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME or _is_default_stderr(h)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if log_format == "json" or not (stream or sys.stderr).isatty():
        _silence_library_progress_bars()  # a bar redrawn with \r is noise in a file or a collector
    debug = level.lower() == "debug"
    if not debug:
        # Read when transformers is imported: its per-load reports are for debugging, as are
        # libraries' notices of their own deprecations.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        warnings.filterwarnings("ignore", category=FutureWarning)
    logging.captureWarnings(True)  # the rest as log records, in the chosen format
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(level.upper())


def _drop_color_message(_logger: object, _name: str, event: dict) -> dict:
    # uvicorn attaches an ANSI-coloured copy of its message as an extra field.
    event.pop("color_message", None)
    return event


def _silence_library_progress_bars() -> None:
    # Hugging Face's loading bars write straight to stderr; in JSON mode every line must parse.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub is imported
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def _is_default_stderr(handler: logging.Handler) -> bool:
    # A plain stderr handler from an earlier logging.basicConfig would print every line twice.
    return type(handler) is logging.StreamHandler and handler.stream is sys.stderr
