"""Faults in the checkpoint store: every damaged or hostile version is refused with a reason,
and a full disk fails a publish without touching LATEST or the versions already there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.checkpoints.manifest import FileEntry
from streamtune.errors import CheckpointError, PublishError
from tests.checkpoints.test_store import manifest_for
from tests.robustness.filesystems import fill, tiny_filesystem

WEIGHTS = "adapter.safetensors"


def writer(content: bytes, then=None):
    def write(directory: Path) -> None:
        (directory / WEIGHTS).write_bytes(content)
        if then is not None:
            then(directory)

    return write


def publish(store: CheckpointStore, content: bytes = b"weights", then=None, before_manifest=None) -> Manifest:
    def build(version: int, files: dict[str, FileEntry]) -> Manifest:
        if before_manifest is not None:
            before_manifest()
        return manifest_for(version, files)

    return store.publish(writer(content, then), build)


def edit_manifest(directory: Path, change) -> None:
    path = directory / "manifest.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def leftovers(root: Path) -> list[str]:
    return [entry.name for entry in root.iterdir() if entry.name.startswith(".tmp-")]


# --- hostile or damaged versions -------------------------------------------------------------


def _symlinked_manifest(directory: Path) -> None:
    real = directory.parent / "elsewhere.json"
    (directory / "manifest.json").rename(real)
    (directory / "manifest.json").symlink_to(real)


def _fifo_manifest(directory: Path) -> None:
    (directory / "manifest.json").unlink()
    os.mkfifo(directory / "manifest.json")  # reading it naively would block forever


def _huge_manifest(directory: Path) -> None:
    edit_manifest(directory, lambda m: m.update(padding="x" * (2 << 20)))


def _weights_replaced_by_symlink(directory: Path) -> None:
    target = directory.parent / "stolen"
    (directory / WEIGHTS).rename(target)
    (directory / WEIGHTS).symlink_to(target)


def _weights_replaced_by_fifo(directory: Path) -> None:
    (directory / WEIGHTS).unlink()
    os.mkfifo(directory / WEIGHTS)


def _truncated_weights(directory: Path) -> None:
    path = directory / WEIGHTS
    path.write_bytes(path.read_bytes()[:3])


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated_weights, "bytes, manifest says"),
        (lambda d: edit_manifest(d, lambda m: m["files"][WEIGHTS].update(sha256="0" * 64)), "sha256"),
        (lambda d: (d / WEIGHTS).unlink(), "missing"),
        (
            lambda d: edit_manifest(d, lambda m: m.update(files={"../v00000001/" + WEIGHTS: m["files"][WEIGHTS]})),
            "unsafe",
        ),
        (lambda d: edit_manifest(d, lambda m: m.update(files={"/etc/passwd": m["files"][WEIGHTS]})), "unsafe"),
        (lambda d: edit_manifest(d, lambda m: m.update(files={"manifest.json": m["files"][WEIGHTS]})), "unsafe"),
        (_symlinked_manifest, "cannot read"),
        (_fifo_manifest, "not a regular file"),
        (_huge_manifest, "more than"),
        (lambda d: (d / "manifest.json").write_text("[" * 100_000), "not JSON"),
        (lambda d: edit_manifest(d, lambda m: m["tuning"].update(tuning="pickle")), "unknown tuning"),
        (lambda d: edit_manifest(d, lambda m: m["tuning"].update(lora_r=0)), "LoRA rank"),
        (lambda d: edit_manifest(d, lambda m: m.update(kafka_offsets={"events:0": -5})), "negative"),
        (lambda d: edit_manifest(d, lambda m: m.update(format_version=99)), "not supported"),
        (_weights_replaced_by_symlink, "missing"),
        (_weights_replaced_by_fifo, "missing"),
    ],
    ids=[
        "truncated-weights",
        "hash-mismatch",
        "missing-file",
        "dotdot-name",
        "absolute-name",
        "manifest-as-file",
        "symlinked-manifest",
        "fifo-manifest",
        "huge-manifest",
        "deep-json-manifest",
        "unknown-tuning",
        "zero-rank",
        "negative-offset",
        "future-format",
        "weights-symlink",
        "weights-fifo",
    ],
)
def test_damaged_version_is_refused_with_a_reason(tmp_path, damage, message):
    store = CheckpointStore(tmp_path)
    publish(store, b"good weights")
    publish(store, b"newer weights")
    damage(store.path_of(2))
    with pytest.raises(CheckpointError, match=message):
        store.verify(2)
    assert store.verify(1).version == 1  # the older version is untouched and still serves


def test_entries_that_are_not_versions_are_never_taken_for_one(tmp_path):
    store = CheckpointStore(tmp_path)
    publish(store)
    (tmp_path / "v00000002").write_text("a file, not a directory")
    (tmp_path / "v00000003").mkdir()  # a directory without a manifest
    (tmp_path / "v00000004").mkdir()
    os.mkfifo(tmp_path / "v00000004" / "manifest.json")
    (tmp_path / "v00000005").symlink_to(store.path_of(1))  # a link, even to a good version
    (tmp_path / "v5").mkdir()
    (tmp_path / "vABCDEFGH").mkdir()
    assert store.versions() == [1]
    for pointed in ("2", "3", "4", "5", "-1", "99999999999", "../../etc/passwd", "", "1e3", "\x00"):
        (tmp_path / "LATEST").write_text(pointed)
        assert store.latest_version() == 1, pointed
    with pytest.raises(CheckpointError, match="outside"):
        store.verify(5)  # asked for by number, the link is refused too
    # Publishing skips every number already taken by something, so it never collides with debris.
    assert publish(store).version == 6
    assert store.versions() == [1, 6] and store.latest_version() == 6


# --- a full disk while writing ----------------------------------------------------------------


def _fill_now(directory: Path, leave_blocks: int = 0):
    return lambda *_: fill(directory, leave_blocks)


@pytest.mark.parametrize("stage", ["weights", "manifest", "LATEST"])
def test_full_disk_fails_the_publish_and_changes_nothing(tmp_path, stage):
    with tiny_filesystem(tmp_path / "small", 256 * 1024) as root:
        store = CheckpointStore(root)
        publish(store, b"v1" * 1000)
        weights = b"v2" * 3000  # two pages
        if stage == "weights":
            fill(root)
            attempt = {}
        elif stage == "manifest":
            attempt = {"then": _fill_now(root)}  # weights written, then the disk fills up
        else:
            attempt = {"before_manifest": _fill_now(root, leave_blocks=1)}  # room for the manifest only

        with pytest.raises(PublishError, match="No space left on device"):
            publish(store, weights, **attempt)

        assert (root / "LATEST").read_text() == "1\n"
        assert store.latest_version() == 1 and store.verify(1).version == 1
        assert leftovers(root) == []
        if stage == "LATEST":
            # The version itself was complete when the pointer could not be moved: it stays, not served.
            assert store.versions() == [1, 2] and store.verify(2).version == 2
        else:
            assert store.versions() == [1]

        (root / "ballast").unlink()  # space again: the retry publishes
        retried = publish(store, weights)
        assert store.latest_version() == retried.version
        assert store.verify(retried.version).files[WEIGHTS].bytes == len(weights)
