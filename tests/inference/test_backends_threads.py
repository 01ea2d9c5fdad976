"""Forward threads are sized to the cores the process may use: affinity and a cgroup quota."""

from __future__ import annotations

import os

import torch

from streamtune.inference.backends.threads import configure_threads, forward_threads, usable_cores


def test_a_cgroup_quota_caps_the_usable_cores(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two cores, partly
    assert usable_cores(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == affinity
    assert usable_cores(tmp_path / "absent") == affinity


def test_one_core_is_left_to_the_event_loop_unless_configured():
    assert forward_threads(None, cores=1) == 1
    assert forward_threads(None, cores=2) == 1
    assert forward_threads(None, cores=16) == 15
    assert forward_threads(4, cores=2) == 4


def test_configure_threads_sets_torchs_pool():
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
