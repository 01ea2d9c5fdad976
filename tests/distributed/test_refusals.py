"""What a group of more than one rank refuses, before it loads anything: a clear error, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamtune.config import Settings
from streamtune.distributed.group import RankInfo
from streamtune.distributed.trainer import require_distributable
from streamtune.errors import ConfigurationError


def test_the_hybrid_family_is_refused_with_two_ranks_and_accepted_with_one():
    hybrid = Settings(_env_file=None, model_kind="hybrid")
    with pytest.raises(ConfigurationError, match="STREAMTUNE_MODEL_KIND=hybrid cannot train with 2 ranks"):
        require_distributable(hybrid, RankInfo(rank=1, world_size=2, local_rank=1))
    require_distributable(hybrid, RankInfo(rank=0, world_size=1, local_rank=0))
    require_distributable(Settings(_env_file=None), RankInfo(rank=1, world_size=2, local_rank=1))


def test_a_rank_started_by_torchrun_refuses_the_hybrid_family_from_the_command_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMTUNE_")}
    env |= {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "STREAMTUNE_MODEL_KIND": "hybrid"}
    command = [sys.executable, "-m", "streamtune", "train"]
    done = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot train with 2 ranks" in done.stderr
    assert "Traceback" not in done.stderr
