"""Checkpoint store backends: publish and load latency on S3 (moto's server) vs a local directory.

Both backends run in the same process, on the same payloads, one after the other:

1. **publish**: :meth:`VersionStore.publish` of a version the size of a real one (LoRA ≈ 0.56 MB,
   full fine-tuning of MiniLM ≈ 91 MB, incompressible bytes). Local: temp dir, fsync, rename,
   LATEST. S3: staging, objects, manifest, conditional LATEST, retention;
2. **cold load**: :meth:`VersionStore.checkout` by a reader that has never seen the version
   (S3: download into its cache while hashing, verify, rename; local: verify in place);
3. **warm load**: the same checkout again (S3: remote manifest compared, cached copy verified);
4. **LATEST**: :meth:`VersionStore.latest_version`, what every server polls.

Medians over ``--versions`` versions per size. moto's server runs on loopback, so the S3 figures
are the protocol's and the client's cost without network latency; on AWS add one round trip per
request (publish: 2 listings, 1 + files + 1 writes, 2 reads; cold load: 1 + files reads).

Run from the repository root: ``python -m benchmarks.store_backends [--quick] [--versions N]``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import argument_parser, format_table, machine, median, work_directory, write_result
from streamtune.checkpoints import Manifest, VersionStore, open_store
from streamtune.checkpoints.manifest import FileEntry
from streamtune.testing.object_storage import MotoS3Server

NAME = "store_backends"
# Version sizes measured by benchmarks/publish_swap.py for MiniLM (bytes).
SIZES = {"lora": 561_173, "full": 91_127_605}
EVENTS_BYTES = 16_384
LATEST_READS = 20


def payload_writer(weights: bytes, events: bytes) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        (directory / "adapter.safetensors").write_bytes(weights)
        (directory / "events.json").write_bytes(events)

    return write


def manifest_for(version: int, files: dict[str, FileEntry]) -> Manifest:
    return Manifest(
        version=version,
        parent_version=version - 1 or None,
        base_model="benchmark",
        tuning={"tuning": "lora"},
        created_at="2026-01-01T00:00:00+00:00",
        files=files,
        kafka_offsets={"events:0": version},
        examples_seen=version,
        examples_in_version=1,
        last_train_loss=None,
        max_length=128,
    )


class RequestCounter:
    """S3 API calls a store makes (botocore's ``before-call`` hook: once per call, so retries the
    client makes under load are not counted and the figure depends on the protocol only)."""

    def __init__(self, store: VersionStore) -> None:
        self.count = 0
        objects = getattr(store, "objects", None)
        if objects is not None:
            objects.client.meta.events.register("before-call.s3", self._sent)

    def _sent(self, **_: Any) -> None:
        self.count += 1


def measure(writer: VersionStore, reader: VersionStore, size: int, versions: int) -> dict[str, float]:
    """Median seconds of publish, cold and warm checkout, and LATEST reads, for one backend;
    and for object storage the requests a publish and a cold load make (load-independent)."""
    publish_s, cold_s, warm_s, latest_s = [], [], [], []
    written, read = RequestCounter(writer), RequestCounter(reader)
    publish_requests, load_requests = [], []
    for index in range(versions):
        weights = os.urandom(size)  # a fresh version each time: no cache can help
        before = written.count
        started = time.perf_counter()
        manifest = writer.publish(payload_writer(weights, os.urandom(EVENTS_BYTES)), manifest_for)
        publish_s.append(time.perf_counter() - started)
        publish_requests.append(written.count - before)
        before = read.count
        started = time.perf_counter()
        checked_out = reader.checkout(manifest.version)
        cold_s.append(time.perf_counter() - started)
        load_requests.append(read.count - before)
        started = time.perf_counter()
        reader.checkout(manifest.version)
        warm_s.append(time.perf_counter() - started)
        if index == 0:
            assert (checked_out.directory / "adapter.safetensors").read_bytes() == weights
    for _ in range(LATEST_READS):
        started = time.perf_counter()
        reader.latest_version()
        latest_s.append(time.perf_counter() - started)
    return {
        "publish_s": median(publish_s),
        "cold_load_s": median(cold_s),
        "warm_load_s": median(warm_s),
        "latest_s": median(latest_s),
        "publish_requests": median(publish_requests),
        "cold_load_requests": median(load_requests),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--versions", type=int, default=None, help="versions per size (default 7; 2 with --quick)")
    args = parser.parse_args(argv)
    versions = args.versions or (2 if args.quick else 7)
    sizes = {"lora": SIZES["lora"]} if args.quick else SIZES
    started_machine = machine()
    results: dict[str, dict[str, Any]] = {}
    with work_directory(NAME) as work_dir, MotoS3Server(work_dir / "moto.log") as credentials:
        os.environ.update(credentials.environment())
        bucket = f"streamtune-bench-{uuid.uuid4().hex[:8]}"
        credentials.client().create_bucket(Bucket=bucket)
        for label, size in sizes.items():
            local_root = work_dir / f"local-{label}"
            local = measure(open_store(None, local_root, 3), open_store(None, local_root, 3), size, versions)
            uri = f"s3://{bucket}/{label}"
            writer, reader = (
                open_store(uri, work_dir / f"writer-{label}", 3),
                open_store(uri, work_dir / f"reader-{label}", 3),
            )
            s3 = measure(writer, reader, size, versions)
            results[label] = {
                "version_bytes": size + EVENTS_BYTES,
                "local": local,
                "s3": s3,
                "s3_over_local": {key: s3[key] / local[key] for key in local if key.endswith("_s")},
            }
    rows = [
        [label, operation, values["local"][operation], values["s3"][operation], values["s3_over_local"][operation]]
        for label, values in results.items()
        for operation in ("publish_s", "cold_load_s", "warm_load_s", "latest_s")
    ]
    rows += [
        [label, operation, None, values["s3"][operation], None]
        for label, values in results.items()
        for operation in ("publish_requests", "cold_load_requests")
    ]
    table = format_table(["version", "operation", "local (s)", "s3 moto (s)", "s3 / local"], rows)
    payload = {
        "settings": {"versions": versions, "quick": args.quick, "latest_reads": LATEST_READS},
        "results": results,
    }
    write_result(args.out, NAME, started_machine, payload, table)
    return payload


if __name__ == "__main__":
    main()
