"""Hypothesis strategies for event values: valid ones (with unicode and structural edge cases)
and hostile ones that are invalid by construction, each paired with the reason it must get.

A generated item is a :class:`Sample`: the raw message value as produced to Kafka, the reason the
trainer must dead-letter it with (None: valid), and for a valid one its normalised event id.
Huge and deeply nested values are built from a small drawn description (a size, a character),
so generating them costs nothing.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime

from hypothesis import strategies as st

from streamtune.events.schema import MAX_EVENT_BYTES, MAX_ID_CHARS

MAX_TEXT_CHARS = 4096
_MAX_TS_MS = 4_102_444_800_000


@dataclass(frozen=True)
class Sample:
    raw: bytes | None
    reason: str | None  # None: a valid event
    event_id: str | None = None

    @property
    def valid(self) -> bool:
        return self.reason is None


def dumps(document: object) -> bytes:
    """JSON as a producer would send it; NaN and Infinity pass (Python's json writes them)."""
    return json.dumps(document, ensure_ascii=False, allow_nan=True).encode("utf-8")


# --- building blocks ---------------------------------------------------------------------------

# Unicode that trips naive code: combining marks, RTL overrides, zero-width joiners, emoji
# sequences, NUL and other controls, noncharacters, the BOM, astral planes.
_EDGE_CHARACTERS = [
    "\u0301",
    "\u202e",
    "\u200d",
    "\u200b",
    "\ufeff",
    "\x00",
    "\x1b",
    "\x7f",
    "\ufffe",
    "\uffff",
    "\U0001f469\u200d\U0001f4bb",
    "\U0010fffd",
    "\u0130",
    "\u00df",
    "\ufb01",
    "\u2028",
    "\u2029",
    "\U0001d573",
    "e\u0301",
    "\u0645\u0631\u062d\u0628\u0627",
    "\u6f22\u5b57",
    "\U0001f1fa\U0001f1f8",
]
edge_text = st.lists(
    st.one_of(st.sampled_from(_EDGE_CHARACTERS), st.text(min_size=1, max_size=8)), min_size=1, max_size=8
).map("".join)
visible_text = st.one_of(edge_text, st.text(min_size=1, max_size=60)).filter(lambda text: text.strip())
_serial = itertools.count()
# Mostly distinct ids (Hypothesis favours small values, so drawn ids collide often): a serial
# number, sometimes with unicode around it. The drawn ones still collide, which is the point.
unique_id = st.builds(lambda: f"ev-{next(_serial)}")
identifier = st.one_of(
    unique_id,
    unique_id,
    unique_id,
    st.tuples(st.text(max_size=6), st.text(max_size=6)).map(lambda ends: f"{ends[0]}-{next(_serial)}-{ends[1]}"),
    st.text(min_size=1, max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63),
    edge_text,
)
timestamp = st.one_of(
    st.integers(min_value=0, max_value=_MAX_TS_MS),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 1, 1)).map(
        lambda moment: moment.isoformat() + "Z"
    ),
)
label = st.one_of(st.sampled_from([0, 1, 0.0, 1.0]), st.floats(min_value=0.0, max_value=1.0))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
shallow_json = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _event_id_key(value: object) -> str:
    return str(value)


@st.composite
def valid_event(draw: st.DrawFn) -> dict:
    """An event the trainer must accept: required fields plus any mix of optional and unknown ones."""
    event = {"event_id": draw(identifier), "text": draw(visible_text), "label": draw(label)}
    for field, strategy in (
        ("user_id", identifier),
        ("item_id", identifier),
        ("context", st.one_of(st.none(), visible_text, st.just(""))),
        ("event_type", st.text(max_size=20)),
        ("ts", timestamp),
    ):
        if draw(st.booleans()):
            event[field] = draw(strategy)
    if draw(st.booleans()):  # unknown fields are ignored, however odd (moderately nested JSON too)
        event[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in event))] = draw(shallow_json)
    if draw(_one_in(20)):
        nesting = draw(st.integers(1, 200))
        event["nested"] = json.loads("[" * nesting + "]" * nesting)
    return event


# The carrier of one defect in a hostile value: a small valid event (cheaper to draw than a full
# one, so ten thousand of them take seconds, not minutes).
base_event = st.builds(
    lambda event_id, text, value: {"event_id": event_id, "text": text, "label": value}, unique_id, visible_text, label
)


def valid_samples() -> st.SearchStrategy[Sample]:
    return valid_event().map(lambda event: Sample(dumps(event), None, _event_id_key(event["event_id"])))


# --- hostile values, invalid by construction ---------------------------------------------------


def _with(event: dict, **changes: object) -> dict:
    return {**event, **changes}


def _without(event: dict, field: str) -> dict:
    return {key: value for key, value in event.items() if key != field}


_MARK = "surrogate-goes-here-7f3a"


def _surrogate_escape(event: dict, field: str, position: int) -> bytes:
    """The event with a lone surrogate escape (\\udc80) spliced into a string field."""
    text = json.dumps(_with(event, **{field: "A" * position + _MARK}))  # ASCII: every other char is escaped
    return text.replace(_MARK, "\\udc80", 1).encode()


# Past any JSON parser's recursion limit, yet under the byte limit (two bytes per level).
deep_depth = st.integers(min_value=20_000, max_value=40_000)


def _oversized(spec: tuple[int, str]) -> Sample:
    size, character = spec
    text = character * (size // len(character.encode()) + 1)
    return Sample(dumps({"event_id": "big", "text": text, "label": 1}), "too_large")


# Large values: costly to move through Kafka, so a small share of the mix.
heavy_samples = st.one_of(
    deep_depth.map(lambda depth: Sample(b"[" * depth + b"]" * depth, "not_json")),
    st.tuples(base_event, deep_depth).map(
        lambda pair: Sample(dumps(pair[0])[:-1] + b',"deep":' + b"[" * pair[1] + b"]" * pair[1] + b"}", "not_json")
    ),
    st.tuples(
        st.integers(MAX_EVENT_BYTES + 1, MAX_EVENT_BYTES + 40_000), st.sampled_from(["x", "\u00e9", "\U0001f600"])
    ).map(_oversized),
)

light_samples = st.one_of(
    # Binary garbage: 0xFF never occurs in UTF-8.
    st.binary(max_size=200).map(lambda tail: Sample(b"\xff" + tail, "not_utf8")),
    # A JSON-looking event with an invalid UTF-8 sequence inside.
    st.tuples(base_event, st.sampled_from([b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88"])).map(
        lambda pair: Sample(dumps(pair[0])[:-1] + b',"x":"' + pair[1] + b'"}', "not_utf8")
    ),
    # Text that is not JSON at all ("#" starts no JSON value).
    st.text(max_size=100).map(lambda text: Sample(("#" + text).encode(), "not_json")),
    # Valid JSON that is not an object.
    shallow_json.filter(lambda value: not isinstance(value, dict)).map(
        lambda value: Sample(dumps(value), "not_object")
    ),
    # Text or context over the limit (but the value itself under the byte limit).
    st.tuples(
        base_event, st.integers(MAX_TEXT_CHARS + 1, MAX_TEXT_CHARS + 500), st.sampled_from(["text", "context"])
    ).map(lambda spec: Sample(dumps(_with(spec[0], **{spec[2]: "y" * spec[1]})), "text_too_long")),
    # Labels that are not finite or not in [0, 1].
    st.tuples(
        base_event,
        st.one_of(
            st.sampled_from([float("nan"), float("inf"), float("-inf")]),
            st.floats(min_value=1.0, exclude_min=True, allow_infinity=False),
            st.floats(max_value=0.0, exclude_max=True, allow_infinity=False),
            st.integers(min_value=2),
            st.integers(max_value=-1),
        ),
    ).map(lambda pair: Sample(dumps(_with(pair[0], label=pair[1])), "label_out_of_range")),
    # Wrong types.
    st.tuples(
        base_event,
        st.sampled_from(["text", "context", "event_type"]),
        st.one_of(
            st.integers(),
            st.floats(allow_nan=False),
            st.booleans(),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ),
    ).map(lambda spec: Sample(dumps(_with(spec[0], **{spec[1]: spec[2]})), "wrong_type")),
    st.tuples(
        base_event,
        st.sampled_from(["event_id", "user_id", "item_id"]),
        st.one_of(
            st.floats(allow_nan=False),
            st.booleans(),
            st.lists(st.text(max_size=3), max_size=3),
            st.text(min_size=MAX_ID_CHARS + 1, max_size=MAX_ID_CHARS + 20),
        ),
    ).map(lambda spec: Sample(dumps(_with(spec[0], **{spec[1]: spec[2]})), "wrong_type")),
    st.tuples(base_event, st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2))).map(
        lambda pair: Sample(dumps(_with(pair[0], label=pair[1])), "wrong_type")
    ),
    # Required fields missing or empty.
    st.tuples(base_event, st.sampled_from(["event_id", "text", "label"])).map(
        lambda pair: Sample(dumps(_without(pair[0], pair[1])), "missing_field")
    ),
    base_event.map(lambda event: Sample(dumps(_with(event, event_id="")), "missing_field")),
    st.tuples(base_event, st.text(alphabet=" \t\r\n\u00a0\u2003\u3000\u2028", max_size=10)).map(
        lambda pair: Sample(dumps(_with(pair[0], text=pair[1])), "empty_text")
    ),
    # Timestamps far in the past or future, or not timestamps.
    st.tuples(
        base_event,
        st.one_of(
            st.integers(max_value=-1),
            st.integers(min_value=_MAX_TS_MS + 1),
            st.sampled_from(
                [
                    "1969-12-31T23:59:59Z",
                    "2100-01-01T00:00:01Z",
                    "9999-12-31T23:59:59+00:00",
                    "0001-01-01T00:00:00+14:00",
                    "yesterday",
                    "",
                    "2024-13-45",
                    "NaN",
                ]
            ),
            st.sampled_from([float("inf"), float("-inf"), float("nan"), True, [], {}]),
        ),
    ).map(lambda pair: Sample(dumps(_with(pair[0], ts=pair[1])), "bad_timestamp")),
    # Lone surrogate escapes in a string field (valid JSON, not representable as UTF-8).
    st.tuples(base_event, st.sampled_from(["text", "event_id", "user_id", "context"]), st.integers(1, 30)).map(
        lambda spec: Sample(_surrogate_escape(*spec), "not_utf8")
    ),
    # A tombstone: a message without a value.
    st.just(Sample(None, "empty")),
)


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True with probability about 1/n. Hypothesis favours the ends of a range, so the lucky
    number sits in the middle of a wide one."""
    return st.integers(0, 1000 * n - 1).map(lambda roll: roll % n == n // 2 and 0 < roll < 1000 * n - 1)


# About one value in two hundred is a heavy one.
hostile_samples = _one_in(200).flatmap(lambda heavy: heavy_samples if heavy else light_samples)


@st.composite
def stream_item(draw: st.DrawFn) -> list[Sample]:
    """One hostile value and, sometimes, a valid event (or a re-delivery of one) next to it."""
    items = [draw(hostile_samples)]
    if draw(_one_in(3)):
        valid = draw(valid_samples())
        items.append(valid)
        if draw(_one_in(10)):  # a duplicate event id, same or different content
            items.append(
                valid
                if draw(st.booleans())
                else draw(
                    valid_samples().map(
                        lambda other: Sample(
                            dumps(_with(json.loads(other.raw), event_id=valid.event_id)), None, valid.event_id
                        )
                    )
                )
            )
    return items
