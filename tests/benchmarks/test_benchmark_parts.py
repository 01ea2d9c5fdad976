"""The pure parts of the benchmarks: FLOP counting, histogram quantiles, freshness bookkeeping."""

from __future__ import annotations

import doctest
import math

import pytest

from benchmarks import flops, freshness, harness, prometheus
from streamtune.modeling.base import TuningSpec, load_base_model, wrap_for_tuning


@pytest.mark.parametrize("module", [flops, prometheus])
def test_doctests(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def test_encoder_shape_counts_the_linear_layers_applied_to_every_token(tiny_model_dir):
    # The tiny BERT: 2 layers of width 32, FFN 64: per layer 4·32·32 (attention) + 2·32·64 (FFN).
    per_layer = 4 * 32 * 32 + 2 * 32 * 64
    base = flops.EncoderShape.of(load_base_model(tiny_model_dir))
    assert base == flops.EncoderShape(token_linear_params=2 * per_layer, layers=2, hidden=32)
    # LoRA r=8 on query and value adds A (8×32) and B (32×8) twice per layer; the base is kept.
    lora = flops.EncoderShape.of(wrap_for_tuning(load_base_model(tiny_model_dir), TuningSpec(tuning="lora", lora_r=8)))
    assert lora.token_linear_params == 2 * per_layer + 2 * 2 * (8 * 32 + 32 * 8)


def test_full_fine_tuning_costs_more_per_token_than_lora_and_mfu_needs_a_peak():
    shape = flops.EncoderShape(token_linear_params=21_000_000, layers=6, hidden=384)
    full = flops.training_flops_per_token(shape, 64, "full")
    lora = flops.training_flops_per_token(shape, 64, "lora")
    assert full > lora > full / 2
    assert flops.mfu(1e12, None) is None
    with pytest.raises(ValueError, match="tuning mode"):
        flops.training_flops_per_token(shape, 64, "prefix")


def test_percentile_interpolates_between_ranks():
    assert harness.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert harness.percentile([1.0, 2.0, math.inf], 99) == math.inf


def test_quantile_of_the_observations_between_two_scrapes():
    before = prometheus.Scrape.parse('f_bucket{le="1.0"} 5\nf_bucket{le="5.0"} 5\nf_bucket{le="+Inf"} 5\n')
    after = prometheus.Scrape.parse('f_bucket{le="1.0"} 5\nf_bucket{le="5.0"} 9\nf_bucket{le="+Inf"} 10\n')
    # Only the 5 new observations count: 4 in (1, 5], 1 beyond the last bucket.
    assert prometheus.delta_quantile(before, after, "f", 0.5) == pytest.approx(1 + 4 * (2.5 / 4))
    assert prometheus.delta_quantile(before, after, "f", 0.99) == 5.0
    assert prometheus.delta_quantile(after, after, "f", 0.5) is None


def test_an_event_is_fresh_from_the_first_version_covering_its_offset():
    sightings = freshness.Sightings()
    sightings.add(10.0, 1, {"kafka_offsets": {"t:0": 3, "t:1": 1}})
    sightings.add(10.5, 1, {"kafka_offsets": {"t:0": 3, "t:1": 1}})  # same version: ignored
    sightings.add(12.0, 2, {"kafka_offsets": {"t:0": 7, "t:1": 4}})
    stream = freshness.Stream(
        keys=["t:0", "t:0", "t:1", "t:1", "t:0"],
        offsets=[2, 3, 0, 3, 9],
        produced_s=[9.0, 9.5, 9.0, 11.0, 11.5],
        measured_from=0,
    )
    assert freshness.freshness_of(stream, sightings) == [1.0, 2.5, 1.0, 1.0, math.inf]
