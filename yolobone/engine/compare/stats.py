"""Across-seed statistics of a comparison: mean ± std (n) per config, and a test of each config against the baseline.

The test is Welch's unequal-variance t-test (scipy.stats.ttest_ind, equal_var=False), two-sided, over the per-seed
values of one metric. A pair whose p-value is at least `alpha` cannot be told apart at that level; a pair with fewer
than two seeds on either side cannot be tested at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import mean, stdev
from typing import Dict, List, Optional, Sequence

TEST_NAME = "Welch's t-test"
ALPHA = 0.05


@dataclass
class Summary:
    """mean ± sample std (ddof=1) of the values over seeds; std is None with one value."""

    values: List[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> Optional[float]:
        return mean(self.values) if self.values else None

    @property
    def std(self) -> Optional[float]:
        return stdev(self.values) if len(self.values) > 1 else None

    def to_dict(self) -> Dict[str, object]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


@dataclass
class PairTest:
    """One config against the baseline on one metric."""

    metric: str
    p_value: Optional[float]  # None: not testable (fewer than two seeds on a side)
    difference: Optional[float]  # mean(config) - mean(baseline)
    alpha: float = ALPHA
    test: str = TEST_NAME

    @property
    def testable(self) -> bool:
        return self.p_value is not None

    @property
    def distinguishable(self) -> Optional[bool]:
        """True: different at `alpha`; False: cannot be told apart; None: not testable."""
        return None if self.p_value is None else self.p_value < self.alpha

    def to_dict(self) -> Dict[str, object]:
        return {"metric": self.metric, "test": self.test, "alpha": self.alpha, "p_value": self.p_value,
                "difference": self.difference, "distinguishable": self.distinguishable}


def welch_test(config: Sequence[float], baseline: Sequence[float], metric: str, alpha: float = ALPHA) -> PairTest:
    """Two-sided Welch t-test of config vs baseline values (one per seed)."""
    a, b = [float(v) for v in config], [float(v) for v in baseline]
    diff = mean(a) - mean(b) if a and b else None
    if len(a) < 2 or len(b) < 2:
        return PairTest(metric, None, diff, alpha)
    if stdev(a) == 0 and stdev(b) == 0:  # no spread at all: identical means are one value, others plainly differ
        return PairTest(metric, 1.0 if diff == 0 else 0.0, diff, alpha)
    from scipy.stats import ttest_ind
    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return PairTest(metric, p if not math.isnan(p) else None, diff, alpha)


@dataclass
class ConfigStats:
    """One config's per-seed figures summarised, and its tests against the baseline (empty for the baseline)."""

    metrics: Dict[str, Summary]
    best_epoch: Summary
    train_time_s: Summary
    tests: Dict[str, PairTest] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        return {"metrics": {k: s.to_dict() for k, s in self.metrics.items()}, "best_epoch": self.best_epoch.to_dict(),
                "train_time_s": self.train_time_s.to_dict(), "vs_baseline": {k: t.to_dict()
                                                                             for k, t in self.tests.items()}}


def config_stats(metric_values: Dict[str, List[float]], best_epochs: List[float], train_times: List[float],
                 baseline: Optional[Dict[str, List[float]]] = None, alpha: float = ALPHA) -> ConfigStats:
    """Summaries of one config's finished seeds; tests on every metric when a baseline's values are given."""
    stats = ConfigStats(metrics={k: Summary(list(v)) for k, v in metric_values.items()},
                        best_epoch=Summary(list(best_epochs)), train_time_s=Summary(list(train_times)))
    if baseline is not None:
        stats.tests = {k: welch_test(v, baseline.get(k, []), k, alpha) for k, v in metric_values.items() if v}
    return stats
