"""A real, tiny filesystem for disk-full tests: a size-limited tmpfs (needs mount rights)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tiny_filesystem(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``path``; skips the test where mounting is not allowed."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or not mount or not umount:
        pytest.skip("a tiny filesystem needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([umount, "-l", str(path)], check=False)


def fill(directory: Path, leave_blocks: int = 0) -> Path:
    """Write a ballast file that leaves ``leave_blocks`` free blocks on the filesystem."""
    stats = os.statvfs(directory)
    ballast = directory / "ballast"
    size = max(0, (stats.f_bavail - leave_blocks) * stats.f_frsize)
    with open(ballast, "ab") as handle:
        handle.write(b"\0" * size)
    return ballast


def free_blocks(directory: Path) -> int:
    return os.statvfs(directory).f_bavail
