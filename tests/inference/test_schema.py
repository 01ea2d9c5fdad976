"""Requests generated from the OpenAPI schema, valid and invalid: the server never answers 5xx."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from streamtune.inference.routes import MAX_MODEL_WAIT_MS
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

pytestmark = pytest.mark.slow  # ~5 s: 30 examples per operation, valid and invalid mixed

TOKEN = "admin-token-for-tests-0123"
EXAMPLES = 30


def test_generated_requests_never_cause_a_server_error(settings):
    publish_perturbed_version(store_of(settings), settings.base_model)
    with serving(settings, admin_token=TOKEN, max_instances=16) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v1/predict", "/v1/rank", "/v1/admin/pin", "/v1/models"}
        for operation in operations:
            cases = st.one_of(
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            )

            @given(case=cases, authorized=st.booleans())
            @hypothesis.settings(
                max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
            )
            def no_server_error(case, authorized) -> None:
                # With the real token half the time, so the admin operations run past the guard.
                headers = {"Authorization": f"Bearer {TOKEN}"} if authorized else None
                # A generated GET /v1/model may wait up to MAX_MODEL_WAIT_MS for a newer version.
                timeout = MAX_MODEL_WAIT_MS / 1000 + 10
                case.call_and_validate(
                    base_url=server.url, headers=headers, checks=[not_a_server_error], timeout=timeout
                )

            no_server_error()
        # Valid and invalid bodies both reached the scoring endpoints.
        for endpoint in ("/v1/predict", "/v1/rank"):
            for status in ("200", "422"):
                assert server.metric("streamtune_request_seconds_count", endpoint=endpoint, status=status) > 0
