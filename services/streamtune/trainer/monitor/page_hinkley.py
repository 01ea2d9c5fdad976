"""Page-Hinkley test: an alarm when the mean of a monitored value (the prequential log-loss)
rises and stays up.

References
----------
E. S. Page, "Continuous inspection schemes", Biometrika 41(1/2), 1954.
J. Gama, I. Žliobaitė, A. Bifet, M. Pechenizkiy, A. Bouchachia, "A survey on concept drift
adaptation", ACM Computing Surveys 46(4), 2014 (section 3.2).
"""

from __future__ import annotations


class PageHinkley:
    """Detects an increase in the mean of a stream of values.

    The statistic is the cumulative deviation ``m_t = Σ (x_i - mean_i - delta)`` of each value
    from the running mean; an alarm is raised when ``m_t - min_{i<=t} m_i > threshold``.

    Parameters
    ----------
    threshold
        Alarm level (lambda): larger means fewer false alarms and later detection. A rise of
        ``d`` in the mean is detected after about ``threshold / (d - delta)`` values.
    delta
        Change per value tolerated as noise.
    min_examples
        Values seen before an alarm may be raised.

    Examples
    --------
    >>> detector = PageHinkley(threshold=5.0, delta=0.01, min_examples=10)
    >>> any(detector.update(0.3).drift for _ in range(200))
    False
    >>> [detector.update(1.3).drift for _ in range(6)]
    [False, False, False, False, False, True]
    """

    def __init__(self, threshold: float = 50.0, delta: float = 0.005, min_examples: int = 30) -> None:
        if threshold <= 0 or delta < 0 or min_examples < 1:
            raise ValueError("threshold must be > 0, delta >= 0, min_examples >= 1")
        self.threshold = threshold
        self.delta = delta
        self.min_examples = min_examples
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (called after an alarm: the new concept is the baseline)."""
        self.count = 0
        self.mean = 0.0
        self.cumulative = 0.0
        self.minimum = 0.0
        self.drift = False

    @property
    def statistic(self) -> float:
        return self.cumulative - self.minimum

    def update(self, value: float) -> PageHinkley:
        """Add one value; ``drift`` says whether it raised the alarm (the state then resets)."""
        if self.drift:
            self.reset()
        self.count += 1
        self.mean += (value - self.mean) / self.count
        self.cumulative += value - self.mean - self.delta
        self.minimum = min(self.minimum, self.cumulative)
        self.drift = self.count >= self.min_examples and self.statistic > self.threshold
        return self
