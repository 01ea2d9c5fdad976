"""Property tests of event decoding: it never raises, whatever the bytes, and refuses each
hostile value with the reason it was built to get."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamtune.events import Event, InvalidEvent, decode_event
from tests.robustness.hostile import Sample, dumps, hostile_samples, shallow_json, valid_samples

FAST = settings(
    deadline=None,
    database=None,
    print_blob=True,  # a failure prints how to reproduce it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KNOWN_FIELDS = ["event_id", "text", "label", "user_id", "item_id", "context", "event_type", "ts"]


def assert_well_formed(decoded: Event | InvalidEvent) -> None:
    """What the rest of the pipeline relies on, whatever came in."""
    if isinstance(decoded, InvalidEvent):
        assert decoded.reason and decoded.reason.isidentifier()
        decoded.detail.encode("utf-8")
        return
    assert isinstance(decoded, Event)
    assert math.isfinite(decoded.label) and 0.0 <= decoded.label <= 1.0
    assert decoded.text.strip() and decoded.event_id
    for value in (decoded.event_id, decoded.text, decoded.user_id, decoded.item_id, decoded.context):
        if value is not None:
            value.encode("utf-8")  # tokenizers and hashes take it


@settings(FAST, max_examples=10_000)
@given(st.binary(max_size=4096))
def test_decode_never_raises_on_arbitrary_bytes(raw):
    assert_well_formed(decode_event(raw))


@pytest.mark.slow
@settings(FAST, max_examples=500)
@given(st.dictionaries(st.sampled_from(KNOWN_FIELDS), shallow_json, max_size=8))
def test_decode_never_raises_on_arbitrary_json_objects(document):
    assert_well_formed(decode_event(dumps(document)))


@pytest.mark.slow
@settings(FAST, max_examples=1000)
@given(hostile_samples)
def test_every_hostile_value_is_refused_with_its_reason(sample: Sample):
    decoded = decode_event(sample.raw)
    assert isinstance(decoded, InvalidEvent), (sample, decoded)
    assert decoded.reason == sample.reason, (sample.raw[:200] if sample.raw else None, decoded)
    assert_well_formed(decoded)


@pytest.mark.slow
@settings(FAST, max_examples=300)
@given(valid_samples())
def test_every_valid_event_is_accepted(sample: Sample):
    decoded = decode_event(sample.raw)
    assert isinstance(decoded, Event), (sample.raw[:300], decoded)
    assert decoded.event_id == sample.event_id
    assert_well_formed(decoded)
