"""One inference server of the evaluation, the store it follows, and what it has been trained on:
step 1 of the lock-step protocol (:mod:`streamtune.evaluation.pipeline_driver`) scores through it.
Also: a copy of a version published into a branch's store (:func:`branch_version`)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.checkpoints.manifest import parse_offset_key
from streamtune.evaluation.children import ChildService
from streamtune.evaluation.contenders import ScoreLog
from streamtune.evaluation.server_client import ServerClient
from streamtune.events import Event

REQUEST_SIZE = 64
# Between requests while a server has no model yet; once it has one, the driver waits in the
# server for the next version (see ServerClient.wait_for_model).
VERSION_POLL_S = 0.01
# Generous: a chunk of full fine-tuning on two busy cores can take minutes; a dead child is
# noticed at once anyway.
STEP_TIMEOUT_S = 1800.0


@dataclasses.dataclass
class ServedStore:
    """An inference server process, the store it follows, and a client for it."""

    name: str
    store: CheckpointStore
    server: ChildService
    client: ServerClient
    events_topic: str  # what its versions' ``kafka_offsets`` count
    # Whether requests carry the events' user and item ids (the hybrid family uses them).
    with_ids: bool = False
    _covered: dict[int, int] = dataclasses.field(default_factory=lambda: {0: 0})
    _warming: ThreadPoolExecutor | None = None

    def covered(self, version: int) -> int:
        """How many leading events of the stream ``version`` was trained on (0: the base model)."""
        if version not in self._covered:
            self.remember(self.store.read_manifest(version).kafka_offsets, version)
        return self._covered[version]

    def remember(self, offsets: dict[str, int], version: int) -> int:
        # Every event went to one partition, each read from offset 0: the next offsets add up.
        events = sum(offset for key, offset in offsets.items() if parse_offset_key(key)[0] == self.events_topic)
        self._covered[version] = int(events)
        return self._covered[version]

    def score(self, events: Sequence[Event], log: ScoreLog) -> None:
        """Step 1: score ``events`` through ``/v1/predict`` and log who answered."""
        with log.timed():
            for request in self._requests(events):
                answer = self.client.predict(request)
                log.add(answer.scores, answer.version, self.covered(answer.version), answer.data_watermark_ms)

    def warm(self, events: Sequence[Event]) -> Future[None]:
        """Send ``events`` to ``/v1/predict`` in the background and drop the scores: the server
        embeds their texts now, while its trainer steps on the other core, so the scoring that
        counts (after the next version) finds them cached. A text's vector does not depend on
        the version scoring it (with the slow path it does, and the request only wastes work)."""
        if self._warming is None:
            self._warming = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"warm-{self.name}")
        return self._warming.submit(self._predict_unlogged, self._requests(events))

    def _predict_unlogged(self, requests: list[list[dict[str, str | None]]]) -> None:
        for request in requests:
            self.client.predict(request)

    def _requests(self, events: Sequence[Event]) -> list[list[dict[str, str | None]]]:
        """``/v1/predict`` bodies' instances for ``events``, at most REQUEST_SIZE per request."""
        return [
            [self._instance(event) for event in events[start : start + REQUEST_SIZE]]
            for start in range(0, len(events), REQUEST_SIZE)
        ]

    def close(self) -> None:
        """Stop warming (a request in flight is abandoned) and close the client."""
        if self._warming is not None:
            self._warming.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def _instance(self, event: Event) -> dict[str, str | None]:
        instance = {"text": event.text, "context": event.context}
        if self.with_ids:
            ids = {"user_id": event.user_id, "item_id": event.item_id}
            instance.update({key: value for key, value in ids.items() if value is not None})
        return instance

    def wait_until_covers(self, position: int, check: Callable[[], None]) -> tuple[int, dict[str, Any]]:
        """Block until the server serves a version trained on events ``[0, position)``."""
        return self.client.wait_for_model(
            lambda version, manifest: (
                version > 0 and self.remember(manifest.get("kafka_offsets") or {}, version) >= position
            ),
            STEP_TIMEOUT_S,
            f"{self.name} to serve a version covering {position} events",
            check,
            VERSION_POLL_S,
        )


def branch_version(source: CheckpointStore, version: int, target: CheckpointStore) -> Manifest:
    """Publish a copy of ``source``'s ``version`` as ``target``'s next version.

    The copy goes through the target store's publish protocol (temp dir, fsync, rename, LATEST),
    so a server following ``target`` can never see it half-written; its manifest keeps the
    original's provenance (offsets, examples, watermark) so freshness is measured the same way.
    """
    original = source.verify(version)
    directory = source.path_of(version)

    def copy_files(temp: Path) -> None:
        for name in original.files:
            shutil.copyfile(directory / name, temp / name)

    return target.publish(
        copy_files,
        lambda new_version, files: dataclasses.replace(original, version=new_version, parent_version=None, files=files),
    )
