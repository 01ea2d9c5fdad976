import json
import math

import pytest

from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.events.schema import MAX_EVENT_BYTES


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def test_valid_event_is_normalised():
    event = decode_event(
        encode(
            {
                "event_id": "e1",
                "user_id": 42,
                "item_id": "i9",
                "text": "A film",
                "context": "likes drama",
                "label": 1,
                "event_type": "click",
                "ts": "2024-01-02T03:04:05Z",
            }
        )
    )
    assert event == Event(
        event_id="e1",
        text="A film",
        label=1.0,
        user_id="42",
        item_id="i9",
        context="likes drama",
        event_type="click",
        ts_ms=1704164645000,
    )


def test_minimal_event_and_epoch_millis():
    event = decode_event(encode({"event_id": "e", "text": "t", "label": 0.25, "ts": 1_700_000_000_000}))
    assert isinstance(event, Event)
    assert event.label == 0.25 and event.ts_ms == 1_700_000_000_000 and event.context is None


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"{not json", "not_json", None),
        (b"\xff\xfe", "not_utf8", None),
        (None, "empty", None),
        (encode([1, 2]), "not_object", None),
        (encode({"text": "t", "label": 1}), "missing_field", "event_id"),
        (encode({"event_id": "", "text": "t", "label": 1}), "missing_field", "event_id"),
        (encode({"event_id": "e", "label": 1}), "missing_field", "text"),
        (encode({"event_id": "e", "text": "t"}), "missing_field", "label"),
        (encode({"event_id": "e", "text": 5, "label": 1}), "wrong_type", "text"),
        (encode({"event_id": "e", "text": "t", "label": "1"}), "wrong_type", "label"),
        (encode({"event_id": "e", "text": "t", "label": True}), "wrong_type", "label"),
        (encode({"event_id": ["e"], "text": "t", "label": 1}), "wrong_type", "event_id"),
        (encode({"event_id": "e", "text": "t", "label": 1.5}), "label_out_of_range", "label"),
        (encode({"event_id": "e", "text": "t", "label": -1}), "label_out_of_range", "label"),
        (b'{"event_id": "e", "text": "t", "label": NaN}', "label_out_of_range", "label"),
        (b'{"event_id": "e", "text": "t", "label": Infinity}', "label_out_of_range", "label"),
        (encode({"event_id": "e", "text": " \n ", "label": 1}), "empty_text", "text"),
        (encode({"event_id": "e", "text": "x" * 5000, "label": 1}), "text_too_long", "text"),
        (
            encode({"event_id": "e", "text": "t", "context": "x" * 5000, "label": 1}),
            "text_too_long",
            "context",
        ),
        (
            encode({"event_id": "e", "text": "t", "label": 1, "ts": "yesterday"}),
            "bad_timestamp",
            "ts",
        ),
        (encode({"event_id": "e", "text": "t", "label": 1, "ts": 10**17}), "bad_timestamp", "ts"),
        (encode({"event_id": "e", "text": "t", "label": 1, "ts": -5}), "bad_timestamp", "ts"),
        (b"[" * 100_000 + b"]" * 100_000, "not_json", None),
        (b" " * (MAX_EVENT_BYTES + 1), "too_large", None),
    ],
)
def test_invalid_events_are_refused_with_a_reason(raw, reason, field):
    result = decode_event(raw)
    assert isinstance(result, InvalidEvent)
    assert result.reason == reason
    if field:
        assert f"'{field}'" in result.detail


def test_text_limit_is_configurable():
    raw = encode({"event_id": "e", "text": "x" * 100, "label": 1})
    assert isinstance(decode_event(raw, max_text_chars=100), Event)
    assert decode_event(raw, max_text_chars=99).reason == "text_too_long"


def test_published_json_schema_agrees_on_required_fields():
    from importlib.resources import files

    schema = json.loads(files("streamtune.events").joinpath("event.schema.json").read_text())
    assert set(schema["required"]) == {"event_id", "text", "label"}
    for name in ("event_id", "user_id", "item_id", "text", "context", "label", "event_type", "ts"):
        assert name in schema["properties"]
    assert not math.isnan(schema["properties"]["label"]["maximum"])
