"""Forgetting users in the versions already published: every retained hybrid version, delta
and trainer state file is rewritten without their rows.

Per version: in ``hybrid_model.safetensors`` (an older version's ``hybrid_model.pt``) each of
the users' rows (snapshot or delta) keeps its row number but loses its key and values (a server
applying it frees the row); in the trainer's ``stream_state.safetensors`` the users leave the
key mappings, admission counters and Adagrad accumulators and the raw holdout window. Rewritten
files replace the old ones atomically and the manifest's sha256 entries follow, so the store
still verifies. Only the directory store can be rewritten in place; on object storage the
versions age out through retention instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.checkpoints.manifest import MANIFEST_FILE, FileEntry, file_sha256
from streamtune.modeling.hybrid import trainer_state
from streamtune.modeling.hybrid.payload_file import write_payload_file
from streamtune.modeling.hybrid.version_files import LEGACY_MODEL_FILE, model_file, read_payload
from streamtune.privacy import user_tags
from streamtune.trainer.versions.files import FAMILY_PREFIX, STREAM_STATE_FILE, read_stream_state, write_stream_state

logger = logging.getLogger(__name__)
USER_SPACES = ("users", "user_kinds")


def forget_in_store(store: CheckpointStore, tags: np.ndarray) -> int:
    """Rewrite every retained version that holds one of these users (pseudonym tags); returns
    how many versions were rewritten. Call with the store's lock held or from its only writer."""
    wanted = {int(tag) for tag in np.asarray(tags).tolist() if tag}
    store.remove_pruned()  # versions retention took out still hold their rows until deleted
    rewritten = 0
    for version in store.versions():
        manifest = store.read_manifest(version)
        if manifest.model_kind != "hybrid" or not wanted:
            continue
        directory = store.path_of(version)
        changed = [name for name in (_scrub_model(directory, wanted), _scrub_state(directory, wanted)) if name]
        if not changed:
            continue
        files = dict(manifest.files)
        for name in changed:
            files[name] = FileEntry(file_sha256(directory / name), (directory / name).stat().st_size)
        _replace(directory / MANIFEST_FILE, dataclasses.replace(manifest, files=files).to_json())
        rewritten += 1
    if rewritten:
        logger.warning("forgot %d user(s) in %d stored version(s)", len(wanted), rewritten)
    return rewritten


def _is_wanted(key: str | None, wanted: set[int]) -> bool:
    if key is None:
        return False
    user = key.split("\x1f", 1)[0]  # a (user, kind) key starts with the user's pseudonym
    return int(user_tags([user])[0]) in wanted


def _scrub_model(directory: Path, wanted: set[int]) -> str | None:
    path = model_file(directory)
    if not path.is_file():
        return None
    payload = read_payload(directory)
    hits = 0
    for space in USER_SPACES:
        part = payload.get(space)
        if part is None:
            continue
        for position, key in enumerate(part["keys"]):
            if _is_wanted(key, wanted):
                part["keys"][position] = None
                part["weights"][position] = 0.0
                part["counts"][position] = 0.0
                hits += 1
    if not hits:
        return None
    temp = directory / f".{path.name}.forget"
    if path.name == LEGACY_MODEL_FILE:
        torch.save(payload, temp)
    else:
        write_payload_file(temp, payload)
    _fsync_replace(temp, path)
    return path.name


def _scrub_state(directory: Path, wanted: set[int]) -> str | None:
    state = read_stream_state(directory)
    if not state:
        return None
    hits = _scrub_holdout(state, wanted)
    family = {key[len(FAMILY_PREFIX) :]: value for key, value in state.items() if key.startswith(FAMILY_PREFIX)}
    learner = trainer_state.decode(family)
    if learner is not None and _scrub_learner(learner, wanted):
        hits += 1
        for name, array in trainer_state.encode(learner).items():
            state[f"{FAMILY_PREFIX}{name}"] = array
    if not hits:
        return None
    temp = directory / f".{STREAM_STATE_FILE}.forget"
    temp.mkdir(exist_ok=True)
    write_stream_state(temp, state)
    _fsync_replace(temp / STREAM_STATE_FILE, directory / STREAM_STATE_FILE)
    temp.rmdir()
    return STREAM_STATE_FILE


def _scrub_holdout(state: dict[str, np.ndarray], wanted: set[int]) -> int:
    users = state.get("holdout.users")
    if users is None or not np.isin(users, list(wanted)).any():
        return 0
    keep = ~np.isin(users, list(wanted))
    for name in ("holdout.labels", "holdout.users"):
        state[name] = state[name][keep]
    if "holdout.raw" in state:
        rows = json.loads(bytes(state["holdout.raw"]).decode())
        kept = [row for row, flag in zip(rows, keep.tolist(), strict=True) if flag]
        state["holdout.raw"] = np.frombuffer(json.dumps(kept).encode(), dtype=np.uint8).copy()
    return int((~keep).sum())


def _scrub_learner(learner: dict[str, Any], wanted: set[int]) -> bool:
    hits = False
    for space in USER_SPACES:
        mapping = learner["mappings"].get(space)
        if mapping is None:
            continue
        gone = [(key, row) for key, row in mapping["rows"] if _is_wanted(key, wanted)]
        pending = [key for key in mapping["pending"] if _is_wanted(key, wanted)]
        if not gone and not pending:
            continue
        hits = True
        gone_keys = {key for key, _ in gone}
        mapping["rows"] = [(key, row) for key, row in mapping["rows"] if key not in gone_keys]
        for key in gone_keys:
            mapping["last_seen"].pop(key, None)
        for key in pending:
            mapping["pending"].pop(key, None)
        sparse = learner["accumulators"].get(space)
        if sparse is not None and gone:  # the freed rows go back to initial: not saved at all
            rows, values = sparse
            keep = ~torch.isin(rows, torch.tensor([row for _, row in gone], dtype=rows.dtype))
            learner["accumulators"][space] = (rows[keep], values[keep])
    return hits


def _fsync_replace(temp: Path, target: Path) -> None:
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)


def _replace(target: Path, data: bytes) -> None:
    temp = target.with_name(f".{target.name}.forget")
    temp.write_bytes(data)
    _fsync_replace(temp, target)
