"""Two classifiers on the same test images: paired test, confidence intervals,
and the blessing policy built on them.

Everything here takes per-example predictions of a baseline (`a`) and a
candidate (`b`) on the *same* examples, so the comparison is paired:
- McNemar's exact test (statsmodels) on per-example correctness: only the
  images one model gets right and the other wrong carry evidence;
- 95 % confidence intervals from a paired bootstrap over the examples. A
  resample of examples is a multinomial draw of the four cells (both right,
  only a, only b, both wrong), so the bootstrap is exact and cheap; per class
  it resamples within the class (stratified).

The policy (`BlessingPolicy`) is what the pipeline's `Blessing` step and the
benchmark (`benchmarks/blessing_policy.py`) both use.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

LEVEL = 0.95
RESAMPLES = 4000


@dataclasses.dataclass(frozen=True)
class PairedTest:
  """McNemar's exact test of `a` vs. `b` on n paired examples."""
  n: int
  both_right: int
  only_a_right: int   # a right, b wrong: evidence that b is worse
  only_b_right: int   # b right, a wrong: evidence that b is better
  both_wrong: int
  p_value: float      # two-sided exact (binomial) McNemar p-value

  @property
  def accuracy_a(self) -> float:
    return (self.both_right + self.only_a_right) / self.n if self.n else float('nan')

  @property
  def accuracy_b(self) -> float:
    return (self.both_right + self.only_b_right) / self.n if self.n else float('nan')

  @property
  def delta(self) -> float:
    """Accuracy of b minus accuracy of a."""
    return (self.only_b_right - self.only_a_right) / self.n if self.n else 0.0

  def describe(self) -> str:
    return (f'McNemar exact p={self.p_value:.3g} on {self.n} paired images '
            f'({self.only_b_right} only the candidate got right, '
            f'{self.only_a_right} only the baseline)')


def mcnemar_test(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> PairedTest:
  """Exact McNemar test on per-example correctness of two models."""
  a = np.asarray(correct_a, bool)
  b = np.asarray(correct_b, bool)
  if a.shape != b.shape:
    raise ValueError(f'correctness vectors differ in shape: {a.shape} vs {b.shape}')
  cells = (int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)),
           int(np.sum(~a & ~b)))
  if cells[1] + cells[2] == 0:
    p = 1.0  # no discordant pair: no evidence either way
  else:
    p = float(mcnemar([[cells[0], cells[1]], [cells[2], cells[3]]],
                      exact=True).pvalue)
  return PairedTest(n=int(a.size), both_right=cells[0], only_a_right=cells[1],
                    only_b_right=cells[2], both_wrong=cells[3],
                    p_value=min(1.0, p))


@dataclasses.dataclass(frozen=True)
class Interval:
  low: float
  high: float


@dataclasses.dataclass(frozen=True)
class Estimate:
  """Accuracy of a, of b and their difference, with bootstrap intervals."""
  test: PairedTest
  accuracy_a: Interval
  accuracy_b: Interval
  delta: Interval


def _bootstrap(test: PairedTest, rng: np.random.Generator,
               resamples: int, level: float) -> Estimate:
  if test.n == 0:
    nan = Interval(float('nan'), float('nan'))
    return Estimate(test, nan, nan, nan)
  cells = np.array([test.both_right, test.only_a_right, test.only_b_right,
                    test.both_wrong], float)
  draws = rng.multinomial(test.n, cells / test.n, size=resamples)
  acc_a = (draws[:, 0] + draws[:, 1]) / test.n
  acc_b = (draws[:, 0] + draws[:, 2]) / test.n
  q = [(1 - level) / 2, (1 + level) / 2]

  def interval(x):
    low, high = np.quantile(x, q)
    return Interval(float(low), float(high))
  return Estimate(test, interval(acc_a), interval(acc_b),
                  interval(acc_b - acc_a))


@dataclasses.dataclass(frozen=True)
class PairedComparison:
  """Overall and per-true-class estimates, and the confusion matrices."""
  overall: Estimate
  per_class: Dict[int, Estimate]        # class id -> accuracy within the class (recall)
  confusion_a: List[List[int]]          # [actual][predicted]
  confusion_b: List[List[int]]
  changed: List[int]                    # indices whose predicted class differs


def compare_predictions(labels: Sequence[int], predicted_a: Sequence[int],
                        predicted_b: Sequence[int], num_classes: int,
                        resamples: int = RESAMPLES, level: float = LEVEL,
                        seed: int = 0) -> PairedComparison:
  """Paired test and bootstrap intervals, overall and per true class."""
  y = np.asarray(labels, np.int64)
  pa = np.asarray(predicted_a, np.int64)
  pb = np.asarray(predicted_b, np.int64)
  if not y.shape == pa.shape == pb.shape:
    raise ValueError('labels and both predictions must have the same length')
  rng = np.random.default_rng(seed)
  ca, cb = pa == y, pb == y
  overall = _bootstrap(mcnemar_test(ca, cb), rng, resamples, level)
  per_class = {c: _bootstrap(mcnemar_test(ca[y == c], cb[y == c]), rng,
                             resamples, level)
               for c in range(num_classes)}

  def confusion(p):
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (y, p), 1)
    return m.tolist()
  return PairedComparison(overall=overall, per_class=per_class,
                          confusion_a=confusion(pa), confusion_b=confusion(pb),
                          changed=np.flatnonzero(pa != pb).tolist())


@dataclasses.dataclass(frozen=True)
class Decision:
  blessed: bool
  reason: str       # one paragraph a person reads in the run summary
  numbers: Dict[str, float]


@dataclasses.dataclass(frozen=True)
class BlessingPolicy:
  """Bless a candidate unless it is evidently worse.

  - `min_accuracy`: absolute bar on the candidate's test accuracy (TFMA's);
  - against a baseline, block only if the candidate is worse by more than
    `max_accuracy_drop` AND McNemar's exact test on the same test images says
    the difference is not noise (p < `alpha`). `alpha=1` gives back the bare
    change threshold; `max_accuracy_drop=1` never blocks on the baseline.
  """
  min_accuracy: float = 0.90
  max_accuracy_drop: float = 0.01
  alpha: float = 0.05

  def worse(self, test: PairedTest) -> bool:
    return (-test.delta > self.max_accuracy_drop + 1e-12 and
            test.p_value < self.alpha)

  def decide(self, accuracy: float, test: Optional[PairedTest]) -> Decision:
    numbers = {'accuracy': accuracy, 'min_accuracy': self.min_accuracy,
               'max_accuracy_drop': self.max_accuracy_drop,
               'alpha': self.alpha}
    reasons = []
    blessed = True
    if not accuracy >= self.min_accuracy:
      blessed = False
      reasons.append(f'test accuracy {accuracy:.4f} is below the required '
                     f'{self.min_accuracy:.4f}')
    else:
      reasons.append(f'test accuracy {accuracy:.4f} >= {self.min_accuracy:.4f}')
    if test is None:
      reasons.append('no blessed baseline yet, so no paired test')
    else:
      numbers.update(baseline_accuracy=test.accuracy_a,
                     paired_accuracy=test.accuracy_b, delta=test.delta,
                     p_value=test.p_value, n=test.n,
                     only_candidate_right=test.only_b_right,
                     only_baseline_right=test.only_a_right)
      versus = (f'vs. baseline {test.accuracy_a:.4f}: {test.delta:+.4f}; '
                f'{test.describe()}')
      if self.worse(test):
        blessed = False
        reasons.append(f'WORSE than the baseline: {versus}; the drop exceeds '
                       f'{self.max_accuracy_drop:.4f} and p < alpha '
                       f'{self.alpha:g}')
      elif test.delta < -self.max_accuracy_drop - 1e-12:
        reasons.append(f'{versus}; lower by more than '
                       f'{self.max_accuracy_drop:.4f}, but not significantly '
                       f'(p >= alpha {self.alpha:g}): within noise')
      elif test.delta < 0:
        reasons.append(f'{versus}; lower, but within the allowed drop of '
                       f'{self.max_accuracy_drop:.4f}')
      else:
        reasons.append(f'{versus}; not worse')
    verdict = 'BLESSED' if blessed else 'NOT blessed'
    return Decision(blessed=blessed, reason=f'{verdict}: ' + '; '.join(reasons),
                    numbers=numbers)


def interval_text(i: Interval, signed: bool = False) -> str:
  f = '{:+.4f}' if signed else '{:.4f}'
  return f'[{f.format(i.low)}, {f.format(i.high)}]'


def holm(p_values: Sequence[float]) -> List[float]:
  """Holm-adjusted p-values, for the ten per-class tests shown together."""
  if not len(p_values):
    return []
  return [float(v) for v in multipletests(list(p_values), method='holm')[1]]
