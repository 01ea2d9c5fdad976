"""Read a service's ``/metrics`` page: counters, histogram means and quantiles between two scrapes."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample by ``(name, sorted labels)``."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def of(cls, url: str, timeout_s: float = 10.0) -> Scrape:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return cls.parse(response.read().decode())

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(samples)

    def total(self, name: str) -> float:
        """The sum of ``name`` over all its label sets (0 when absent)."""
        return sum(value for (sample, _), value in self.samples.items() if sample == name)

    def buckets(self, histogram: str) -> dict[float, float]:
        """Cumulative counts by upper bound of ``histogram``, summed over its other labels."""
        counts: dict[float, float] = defaultdict(float)
        for (sample, labels), value in self.samples.items():
            if sample == f"{histogram}_bucket":
                counts[float(dict(labels)["le"])] += value
        return dict(counts)


def delta_mean(before: Scrape, after: Scrape, histogram: str) -> float | None:
    """Mean of the observations of ``histogram`` made between the two scrapes."""
    count = after.total(f"{histogram}_count") - before.total(f"{histogram}_count")
    if count <= 0:
        return None
    return (after.total(f"{histogram}_sum") - before.total(f"{histogram}_sum")) / count


def delta_count(before: Scrape, after: Scrape, name: str) -> float:
    return after.total(name) - before.total(name)


def delta_quantile(before: Scrape, after: Scrape, histogram: str, q: float) -> float | None:
    """The ``q`` quantile (0–1) of the observations between two scrapes, interpolated linearly
    within buckets as Prometheus' ``histogram_quantile`` does; None without observations.

    >>> one = Scrape.parse('h_bucket{le="1.0"} 0\\nh_bucket{le="2.0"} 0\\nh_bucket{le="+Inf"} 0\\n')
    >>> two = Scrape.parse('h_bucket{le="1.0"} 2\\nh_bucket{le="2.0"} 4\\nh_bucket{le="+Inf"} 4\\n')
    >>> delta_quantile(one, two, "h", 0.75)
    1.5
    """
    early, late = before.buckets(histogram), after.buckets(histogram)
    bounds = sorted(late)
    counts = [late[bound] - early.get(bound, 0.0) for bound in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return None
