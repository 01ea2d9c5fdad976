"""The serving side's views of the settings: what the API and the batcher read from them."""

from __future__ import annotations

import math

from streamtune.config import Settings
from streamtune.inference.app_parts import ApiOptions, ServingLimits
from streamtune.inference.batch_policy import BatchingPolicy

TOKEN = "an-admin-token-of-32-characters!"


def test_api_options_carry_the_settings_and_keep_the_admin_token_out_of_their_repr():
    settings = Settings(
        _env_file=None,
        admin_token=TOKEN,
        cors_origins=["https://app.example"],
        model_name="ranker",
        public_model_info=False,
        max_instances=32,
        max_text_chars=512,
        max_request_bytes=4096,
    )

    options = ApiOptions.from_settings(settings)

    assert options.admin_token == TOKEN and TOKEN not in repr(options)
    assert options.limits == ServingLimits(max_instances=32, max_text_chars=512, max_request_bytes=4096)
    assert (options.cors_origins, options.model_name, options.public_model_info) == (
        ("https://app.example",),
        "ranker",
        False,
    )
    assert ApiOptions.from_settings(Settings(_env_file=None, admin_token=None)).admin_token is None


def test_batching_policy_reads_milliseconds_as_seconds_and_always_fits_a_full_request():
    settings = Settings(
        _env_file=None,
        serve_max_batch=16,
        serve_max_wait_ms=7.0,
        serve_max_queue=10,
        max_instances=64,
        serve_default_deadline_ms=2500.0,
    )

    policy = BatchingPolicy.from_settings(settings, workers=3)

    assert policy == BatchingPolicy(max_batch=16, max_wait_s=0.007, max_queued=64, default_deadline_s=2.5, workers=3)
    assert BatchingPolicy().default_deadline_s == math.inf  # a batcher built without settings never drops
