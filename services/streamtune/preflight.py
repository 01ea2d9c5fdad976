"""Checks a command makes before it acts, so a mistake is one clear line rather than a
traceback half-way through, or worse, a command that silently acts on the wrong thing."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from streamtune.errors import ConfigurationError
from streamtune.privacy.pseudonyms import KEY_FILE

# Optional packages and the extra that installs them.
OPTIONAL_PACKAGES = {"river": "eval", "matplotlib": "eval"}


class MissingDependencyError(ConfigurationError):
    """An optional package a command needs is not installed."""


def require_packages(command: str, *packages: str) -> None:
    """Raise :class:`MissingDependencyError` naming the extra when one of ``packages`` is absent."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        extra = OPTIONAL_PACKAGES.get(missing[0], "dev")
        raise MissingDependencyError(
            f"`streamtune {command}` needs {' and '.join(missing)}, which the {extra} extra installs: "
            f"pip install 'streamtune[{extra}]'"
        )


def missing_dependency_message(error: ModuleNotFoundError) -> str | None:
    """The one-line advice for an optional package found missing at run time, else None."""
    top = (error.name or "").split(".")[0]
    if top not in OPTIONAL_PACKAGES:
        return None
    extra = OPTIONAL_PACKAGES[top]
    return f"{top} is not installed; the {extra} extra installs it: pip install 'streamtune[{extra}]'"


def require_store(checkpoint_dir: Path) -> None:
    """Refuse a checkpoint store that does not exist: a command run from the wrong folder must
    not create an empty store of its own and report success."""
    if not checkpoint_dir.is_dir():
        raise ConfigurationError(
            f"no checkpoint store at {checkpoint_dir.resolve()} (STREAMTUNE_CHECKPOINT_DIR); point "
            "STREAMTUNE_CHECKPOINT_DIR (or STREAMTUNE_CHECKPOINT_URI) at the store the trainer uses"
        )


def require_pseudonymisation_key(configured: bool, checkpoint_dir: Path) -> None:
    """``forget`` must derive the trainer's pseudonyms: with no configured key, the store's own
    key must already exist (generating a new one would record a pseudonym nobody uses)."""
    require_store(checkpoint_dir)
    if not configured and not (checkpoint_dir / KEY_FILE).is_file():
        raise ConfigurationError(
            f"the store {checkpoint_dir.resolve()} holds no {KEY_FILE} and STREAMTUNE_PSEUDONYMISE_KEY is unset: "
            "no trainer has run against this store; set STREAMTUNE_CHECKPOINT_DIR to the trainer's store"
        )


def require_free_disk(directory: Path, needed_bytes: int, what: str) -> None:
    """Refuse to start ``what`` when ``directory``'s file system has less than ``needed_bytes``
    free: better at once than after an hour, with temporary files left behind."""
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise ConfigurationError(
            f"{what} needs about {needed_bytes >> 20} MiB free in {directory} and {free >> 20} MiB are; "
            "free some space or point --work-dir elsewhere"
        )
