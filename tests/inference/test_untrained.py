"""Version 0 (the base model, before any training) is marked untrained wherever it is served."""

from __future__ import annotations

from streamtune.client import Client
from streamtune.testing.network import wait_for
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version


def test_version_0_is_marked_untrained_and_a_trained_version_is_not(settings):
    with serving(settings) as server, Client(server.url) as client:
        before = client.predict(["a film"]), client.rank([(1, "a film")]), client.model()
        publish_perturbed_version(store_of(settings), settings.base_model, seed=1)
        wait_for(lambda: client.model().model_version == 1, 30, what="version 1 served")
        after = client.predict(["a film"]), client.rank([(1, "a film")]), client.model()
    assert [result.model_version for result in before] == [0, 0, 0]
    assert [result.trained for result in before] == [False, False, False]
    assert [result.trained for result in after] == [True, True, True]
