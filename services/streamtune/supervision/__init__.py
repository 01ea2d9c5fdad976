"""Supervision of the stack's child processes: restart policy and one supervised child."""

from streamtune.supervision.child import ChildLaunch, SupervisedChild
from streamtune.supervision.policy import CrashLoopError, RestartPolicy, RestartTracker

__all__ = ["ChildLaunch", "CrashLoopError", "RestartPolicy", "RestartTracker", "SupervisedChild"]
