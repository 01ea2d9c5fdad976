"""Learning-rate schedule for an unbounded stream: warm up, hold constant, re-warm on drift.

A stream has no last step, so the usual decay-to-zero schedules (cosine, linear) do not apply:
they would freeze the model just when the data moves. The multiplier is therefore

* ``(step + 1) / (warmup + 1)`` during the first ``warmup`` steps (fresh AdamW moments are
  unreliable; every process start warms up again because the moments are not checkpointed);
* ``1`` from then on;
* after :meth:`StreamSchedule.rewarm` (a drift alarm) it jumps to ``factor`` and falls back to
  ``1`` linearly over ``rewarm_steps`` steps, so the model moves faster towards the new concept
  and then settles.

Re-warming follows the finding that continual training benefits from raising the learning rate
again when the distribution shifts: Gupta et al., "Continual Pre-Training of Large Language
Models: How to (re)warm your model?", 2023 (arXiv:2308.04014); Ibrahim et al., "Simple and
Scalable Strategies to Continually Pre-train Large Language Models", 2024 (arXiv:2403.08763).
"""

from __future__ import annotations


class StreamSchedule:
    """Learning-rate multiplier per optimiser step (a ``LambdaLR`` lambda with state).

    Parameters
    ----------
    warmup_steps
        Steps of linear warm-up at the start.
    rewarm_factor
        Multiplier right after a re-warm (``1`` disables re-warming).
    rewarm_steps
        Steps over which a re-warm decays back to the constant rate.

    Examples
    --------
    >>> schedule = StreamSchedule(warmup_steps=3, rewarm_factor=3.0, rewarm_steps=4)
    >>> [schedule(step) for step in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    >>> schedule.rewarm(at_step=10)
    >>> [schedule(step) for step in range(10, 15)]
    [3.0, 2.5, 2.0, 1.5, 1.0]
    >>> off = StreamSchedule(warmup_steps=3, rewarm_steps=4)  # factor 1: re-warming is off
    >>> off.rewarm(at_step=0)
    >>> [off(step) for step in range(3)]
    [0.25, 0.5, 0.75]
    """

    def __init__(self, warmup_steps: int, rewarm_factor: float = 1.0, rewarm_steps: int = 0) -> None:
        if warmup_steps < 0 or rewarm_steps < 0 or rewarm_factor < 1:
            raise ValueError("steps must be >= 0 and rewarm_factor >= 1")
        self.warmup_steps = warmup_steps
        self.rewarm_factor = rewarm_factor
        self.rewarm_steps = rewarm_steps
        self._rewarmed_at: int | None = None

    @property
    def rewarms(self) -> bool:
        """Whether :meth:`rewarm` changes any rate (a factor of 1 or no steps: it does not)."""
        return self.rewarm_factor > 1 and self.rewarm_steps > 0

    def rewarm(self, at_step: int) -> None:
        """Start a re-warm at optimiser step ``at_step`` (the next step taken); nothing when
        re-warming is off, so an alarm during warm-up does not end the warm-up either."""
        if self.rewarms:
            self._rewarmed_at = at_step

    def __call__(self, step: int) -> float:
        factor = min(1.0, (step + 1) / (self.warmup_steps + 1))
        if self._rewarmed_at is not None:
            since = step - self._rewarmed_at
            if 0 <= since < self.rewarm_steps:
                boost = (self.rewarm_factor - 1.0) * (1.0 - since / self.rewarm_steps)
                factor = max(factor, 1.0 + boost)
        return factor
