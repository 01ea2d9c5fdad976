"""Property tests of event decoding: it never raises, whatever the bytes, and refuses each
hostile value with the reason it was built to get."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.events.schema import _parse
from tests.robustness.hostile import Sample, dumps, hostile_samples, json_leaf, shallow_json, valid_samples

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


# --- the fast JSON reader reads as the standard library does ---------------------------------

# Numbers where the two readers part: integers past 64 bits, floats past a double, NaN and the
# infinities; strings with lone surrogates (escaped by ensure_ascii, raw bytes otherwise).
_wide_leaf = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(max_value=-(2**63) + 2),
    st.floats(),
    st.just(10**400),
    st.text(st.characters(codec=None, categories=None), max_size=8),
)
_wide_json = st.recursive(
    st.one_of(json_leaf, _wide_leaf),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)
_documents = st.one_of(
    st.dictionaries(st.sampled_from(KNOWN_FIELDS) | st.text(max_size=6), _wide_json, max_size=8), _wide_json
)
_texts = st.builds(
    lambda document, ascii: json.dumps(document, ensure_ascii=ascii).encode("utf-8", "surrogatepass"),
    _documents,
    st.booleans(),
)


def _as_validation_sees(document: object) -> object:
    """The top level, typed and exact (NaN equal to NaN); nested values only by their type."""

    def leaf(value: object) -> object:
        return (type(value), json.dumps(value) if type(value) not in (dict, list) else None)

    if type(document) is dict:
        return {key: leaf(value) for key, value in document.items()}
    return leaf(document)


@settings(FAST, max_examples=3000)
@given(st.one_of(_texts, st.binary(max_size=256)))
def test_the_fast_reader_reads_every_value_as_the_standard_library_does(raw):
    try:
        standard = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as refusal:  # UnicodeDecodeError is a ValueError
        with pytest.raises(type(refusal)):
            _parse(raw)
        return
    assert _as_validation_sees(_parse(raw)) == _as_validation_sees(standard)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"event_id": 123456789012345678901234567890, "text": "t", "label": 1}', None),
        (b'{"event_id": "e", "text": "t", "label": 18446744073709551616}', "label_out_of_range"),
        (b'{"event_id": "e", "text": "t", "label": NaN}', "label_out_of_range"),
        (b'{"event_id": "e", "text": 1e400, "label": 1}', "wrong_type"),
        (b'{"event_id": "e", "text": "\\ud800", "label": 1}', "not_utf8"),
    ],
)
def test_values_the_fast_reader_refuses_or_widens_decode_as_before(raw, reason):
    decoded = decode_event(raw)
    if reason is None:
        assert isinstance(decoded, Event) and decoded.event_id == "123456789012345678901234567890"
    else:
        assert isinstance(decoded, InvalidEvent) and decoded.reason == reason, decoded
