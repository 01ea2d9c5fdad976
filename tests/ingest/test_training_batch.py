"""One place builds a TrainingBatch: the stream's batches and a bootstrap file's carry the same
rows — raw fields, pseudonyms, watermarks and the family encoder's inputs."""

from __future__ import annotations

import json

import numpy as np
import torch
from transformers import AutoTokenizer

from streamtune.events import decode_event
from streamtune.ingest.bootstrap_file import BootstrapSummary, historical_batches
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.modeling.encoding import PairEncoder, encode_pairs
from streamtune.testing.events import synthetic_events


def test_a_bootstrap_file_gives_the_batches_the_builder_gives_the_stream(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    builder = BatchBuilder(PairEncoder(tokenizer, 32), lambda user: None if user is None else f"p-{user}")
    events = synthetic_events(10, seed=7)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events) + "not json\n")
    summary = BootstrapSummary()
    from_file = list(historical_batches(path, builder, batch_size=6, max_text_chars=4096, summary=summary))
    assert [len(batch) for batch in from_file] == [6, 4] and summary.invalid == 1

    decoded = [decode_event(json.dumps(event).encode(), 4096) for event in events[:6]]
    streamed = builder.build(decoded, generation=3, offsets={"events:0": 6}, produced_ms=[5, None, 9, 1, 2, 3])
    first = from_file[0]
    assert streamed.texts == first.texts == [event["text"] for event in events[:6]]
    assert streamed.contexts == first.contexts == [event.get("context") for event in events[:6]]
    assert streamed.item_ids == first.item_ids == [str(event["item_id"]) for event in events[:6]]
    assert streamed.user_ids == first.user_ids == [f"p-{event['user_id']}" for event in events[:6]]
    assert streamed.event_ids == first.event_ids
    assert torch.equal(streamed.labels, first.labels)
    expected = encode_pairs(tokenizer, first.texts, first.contexts, 32)
    for name, tensor in expected.items():
        assert torch.equal(streamed.inputs[name], tensor) and torch.equal(first.inputs[name], tensor)
    assert (streamed.generation, streamed.offsets, first.offsets) == (3, {"events:0": 6}, {})
    assert (streamed.produced_watermark_ms, streamed.produced_oldest_ms) == (9, 1)
    assert streamed.data_watermark_ms == max(event["ts"] for event in events[:6])


def test_selected_rows_keep_their_raw_fields_and_a_family_may_encode_nothing():
    events = synthetic_events(4, seed=8)
    batch = BatchBuilder(None).build([decode_event(json.dumps(event).encode(), 4096) for event in events])
    assert batch.inputs == {} and batch.user_ids == [None] * 4
    picked = batch.select(np.array([2, 0]))
    assert picked.texts == [events[2]["text"], events[0]["text"]]
    assert picked.event_ids == [events[2]["event_id"], events[0]["event_id"]]
    assert picked.labels.tolist() == [float(events[2]["label"]), float(events[0]["label"])]
    assert picked.user_tags().tolist() == [0, 0]
