"""A writer SIGKILLed between objects leaves nothing a reader loads; a reader racing 200
publishes never loads a partial or mixed version. Against moto's real S3 HTTP API."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streamtune.checkpoints import open_store
from streamtune.errors import CheckpointError
from tests.checkpoints.s3_helpers import manifest_for, payload, publish

ROOT = Path(__file__).resolve().parents[2]


def kill_mid_publish(uri: str, cache_dir: Path, stop_after: int) -> str:
    """Run the child writer until its ``stop_after``-th upload, SIGKILL it; the key it reached."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.checkpoints.s3_publisher_child", uri, str(cache_dir), str(stop_after)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert line.startswith("uploaded "), f"the child wrote {line!r}"
    return line.split()[1]


# Three files (sorted: adapter, events, part-00), then the manifest, then LATEST.
@pytest.mark.parametrize(("stop_after", "reached"), [(1, "adapter.safetensors"), (3, "part-00.bin")])
def test_a_writer_killed_between_objects_leaves_nothing_a_reader_loads(tmp_path, s3_bucket, stop_after, reached):
    uri = f"s3://{s3_bucket}/crash"
    reader = open_store(uri, tmp_path / "reader")
    publish(reader, b"first")
    assert kill_mid_publish(uri, tmp_path / "writer", stop_after).endswith(f"/v00000002/{reached}")

    assert reader.versions() == [1]
    assert reader.latest_version() == 1
    assert reader.checkout(1).manifest.version == 1
    with pytest.raises(CheckpointError, match="does not exist"):
        reader.checkout(2)
    # The next writer sweeps the leftovers, and its version gets a fresh number.
    writer = open_store(uri, tmp_path / "writer")
    assert writer.sweep_temporary() >= 1
    assert not [name for name in writer.objects.names() if name.startswith("v00000002/")]
    assert publish(writer, b"next").version == 2
    assert reader.latest_version() == 2


def test_a_writer_killed_after_the_manifest_leaves_a_whole_version_latest_unmoved(tmp_path, s3_bucket):
    uri = f"s3://{s3_bucket}/crash"
    reader = open_store(uri, tmp_path / "reader")
    publish(reader, b"first")
    assert kill_mid_publish(uri, tmp_path / "writer", 4).endswith("/v00000002/manifest.json")
    assert reader.latest_version() == 1  # never announced, never served unless pinned...
    assert reader.verify(2).version == 2  # ...and whole if it is
    assert publish(reader, b"third").version == 3


@pytest.mark.slow
def test_a_reader_racing_200_publishes_never_loads_a_partial_version(tmp_path, s3_bucket):
    uri = f"s3://{s3_bucket}/race"
    writer = open_store(uri, tmp_path / "writer", keep_versions=5)
    reader = open_store(uri, tmp_path / "reader", keep_versions=5)
    publishes, done = 200, threading.Event()
    loads: list[int] = []
    refused_while_present: list[tuple[int, str]] = []

    def write() -> None:
        try:
            for index in range(publishes):
                writer.publish(
                    payload(f"p{index};".encode(), size=16384, files=3),
                    lambda version, files, index=index: manifest_for(version, files, metrics={"tag": index}),
                )
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while not done.is_set():
            # What LATEST names, and the newest version listed (what a fallback or a pin sees).
            for version in {reader.latest_version(), max(reader.versions(), default=None)} - {None}:
                try:
                    checked_out = reader.checkout(version)
                except CheckpointError as error:
                    if version in reader.versions():  # only retention may take a version away
                        refused_while_present.append((version, str(error)))
                    continue
                tag = f"p{int(checked_out.manifest.metrics['tag'])};".encode()
                for name in checked_out.manifest.files:
                    content = (checked_out.directory / name).read_bytes()
                    assert content == (tag * (16384 // len(tag) + 1))[:16384], f"v{version}: {name} is not its own"
                loads.append(version)
    finally:
        thread.join(120)
    assert writer.versions() == list(range(publishes - 4, publishes + 1))
    assert refused_while_present == []
    assert len(set(loads)) >= 5, f"the reader loaded only {sorted(set(loads))}"
    print(f"{len(loads)} loads of {len(set(loads))} versions during {publishes} publishes")
