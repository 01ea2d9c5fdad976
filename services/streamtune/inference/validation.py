"""The 422 answer to a request that fails validation, always encodable as strict JSON.

Python's JSON parser accepts ``NaN``/``Infinity`` and lone UTF-16 surrogates (``"\\ud800"``);
pydantic rejects them, but FastAPI's default answer echoes the offending ``input``, which then
cannot be rendered (no NaN in strict JSON, no surrogate in UTF-8) and the client gets a 500.
Here such an input is left out and the message says why; ``loc`` and ``msg`` always stay, so
the answer still names the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.encoders import jsonable_encoder

# A 422 quotes at most this much of the offending value: enough to recognise it, while a
# 5,000-character text (or a whole rejected object) is not sent back to the client.
MAX_QUOTED_CHARS = 80


def strict_json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be sent as strict UTF-8 JSON, or None when it can."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate, which is not valid Unicode"
    except ValueError:  # allow_nan=False
        return "NaN or Infinity, which JSON does not allow"
    except (TypeError, RecursionError):
        return "a value that cannot be shown"
    return None


def quoted(value: Any) -> Any:
    """``value`` itself when short; else a prefix of its JSON text, marked as cut.

    >>> quoted("fine"), quoted("x" * 100)[-20:]
    ('fine', 'xx… (100 characters)')
    """
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= MAX_QUOTED_CHARS:
        return value
    return f"{text[:MAX_QUOTED_CHARS]}… ({len(text)} characters)"


def printable(text: str) -> str:
    """``text`` with lone surrogates written out as ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def render_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The validation errors as strict-JSON-safe dicts (``type``, ``loc``, ``msg``, and ``input``
    and ``ctx`` where they can be shown)."""
    rendered = []
    for error in errors:
        item: dict[str, Any] = {
            "type": printable(str(error.get("type", ""))),
            "loc": [part if isinstance(part, int) else printable(str(part)) for part in error.get("loc", ())],
            "msg": printable(str(error.get("msg", ""))),
        }
        for key in ("input", "ctx"):
            if key not in error:
                continue
            raw = error[key]
            if key == "ctx" and isinstance(raw, Mapping):  # a validator's exception: its message
                raw = {name: str(v) if isinstance(v, Exception) else v for name, v in raw.items()}
            try:
                value = jsonable_encoder(raw)
            except (TypeError, ValueError, RecursionError):
                value, problem = None, "a value that cannot be shown"
            else:
                problem = strict_json_problem(value)
            if problem is None:
                item[key] = quoted(value) if key == "input" else value
            elif key == "input":
                item["msg"] += f" (the input holds {problem}; it is not echoed)"
        rendered.append(item)
    return rendered
