"""Statistical two-sample tests of a window against a reference, with p-values.

TFDV's checks compare marginal histograms against fixed distance thresholds,
which control no error rate and do not move when images are rotated or moved.
These tests do, each with a p-value:
- `bbsd` (black-box shift detection, Rabanser et al., "Failing Loudly", 2019):
  a two-sample Kolmogorov-Smirnov test on each of the model's 10 class
  probabilities, window (the logged `probabilities`) vs. the model's outputs
  on held-out data; Bonferroni over the 10 classes.
- `predicted_class`: a chi-square test of homogeneity of the window's
  predicted-class counts and the reference's.
- `image_features`: KS tests on per-image features with spatial structure
  (intensity-weighted centre of mass, second moments, ink bounding box,
  left/right and top/bottom mass balance, mean intensity, background share);
  Bonferroni over the features. It sees rotations, shifts, flips and noise
  even where the model's outputs do not move.
Each test gives one p-value; Holm's step-down correction across the tests
keeps the chance that a window of natural traffic raises any alarm at or
below `alpha` (family-wise error rate; tests/monitoring/test_detectors.py
measures it on null windows). Shaped after alibi-detect's `BaseUnivariateDrift`
(reference fixed up front, one place for the correction), without the
dependency: scipy's tests are all this needs.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

from models import features

BBSD = 'bbsd'
PREDICTED_CLASS = 'predicted_class'
IMAGE_FEATURES = 'image_features'
TESTS = (BBSD, PREDICTED_CLASS, IMAGE_FEATURES)
DEFAULT_ALPHA = 0.05
# Fewer usable instances than this and a test is skipped (and says so): KS and
# chi-square p-values are asymptotic, and tiny samples only add noise.
MIN_TEST_INSTANCES = 50

# Per-image features (docs/monitoring.md). A pixel counts as ink above this
# grey level for the bounding box (Fashion-MNIST's background is 0).
INK_LEVEL = 32
FEATURE_NAMES = ('mean intensity', 'background share', 'centre of mass x',
                 'centre of mass y', 'spread x', 'spread y', 'covariance xy',
                 'ink top row', 'ink bottom row', 'ink left column',
                 'ink right column', 'left/right balance', 'top/bottom balance')


def image_features(pixels: np.ndarray) -> np.ndarray:
  """[N, 784] grey levels -> [N, len(FEATURE_NAMES)] float64 features."""
  size = features.IMAGE_SIZE
  x = np.asarray(pixels, np.float64).reshape(-1, size, size)
  n = len(x)
  mass = x.sum(axis=(1, 2))
  safe = np.where(mass > 0, mass, 1.0)
  grid = np.arange(size, dtype=np.float64)
  rows = x.sum(axis=2) / safe[:, None]   # mass share per row
  cols = x.sum(axis=1) / safe[:, None]   # mass share per column
  cy = rows @ grid
  cx = cols @ grid
  syy = rows @ grid ** 2 - cy ** 2
  sxx = cols @ grid ** 2 - cx ** 2
  sxy = np.einsum('nij,i,j->n', x, grid, grid) / safe - cx * cy
  ink = x > INK_LEVEL
  any_row, any_col = ink.any(axis=2), ink.any(axis=1)
  has_ink = any_row.any(axis=1)

  def first(a):
    return np.where(has_ink, a.argmax(axis=1), size / 2)

  def last(a):
    return np.where(has_ink, size - 1 - a[:, ::-1].argmax(axis=1), size / 2)

  half = size // 2
  left_right = (cols[:, :half].sum(axis=1) - cols[:, half:].sum(axis=1))
  top_bottom = (rows[:, :half].sum(axis=1) - rows[:, half:].sum(axis=1))
  out = np.stack([
      x.reshape(n, -1).mean(axis=1), (x.reshape(n, -1) <= 0).mean(axis=1),
      cx, cy, sxx, syy, sxy, first(any_row), last(any_row), first(any_col),
      last(any_col), left_right, top_bottom], axis=1)
  return out


@dataclasses.dataclass(frozen=True)
class Reference:
  """What a window is compared with: the served model on held-out data."""
  probabilities: np.ndarray    # [N, 10] the model's softmax outputs
  image_features: np.ndarray   # [N, len(FEATURE_NAMES)]
  mean_image: np.ndarray       # [784] mean grey level per pixel
  model_version: str
  description: str             # for people: which data, which model

  def __post_init__(self):
    if len(self.probabilities) != len(self.image_features):
      raise ValueError('reference probabilities and image features differ in '
                       'length')

  def __len__(self) -> int:
    return len(self.probabilities)

  @property
  def predicted_classes(self) -> np.ndarray:
    return np.argmax(self.probabilities, axis=1)

  @classmethod
  def from_outputs(cls, pixels: np.ndarray, probabilities: np.ndarray,
                   model_version: str, description: str) -> 'Reference':
    pixels = np.asarray(pixels, np.float64).reshape(len(pixels), -1)
    return cls(probabilities=np.asarray(probabilities, np.float64),
               image_features=image_features(pixels),
               mean_image=pixels.mean(axis=0), model_version=str(model_version),
               description=description)

  def save(self, path: str) -> None:
    with open(path, 'wb') as f:
      np.savez_compressed(f, probabilities=self.probabilities.astype(np.float32),
                          image_features=self.image_features,
                          mean_image=self.mean_image,
                          model_version=np.array(self.model_version),
                          description=np.array(self.description))

  @classmethod
  def load(cls, path: str, source=None) -> 'Reference':
    """From `path` (or the open binary file `source`, named `path`).

    Raises ValueError if it is not a saved reference.
    """
    try:
      with np.load(source or path, allow_pickle=False) as z:
        return cls(probabilities=z['probabilities'].astype(np.float64),
                   image_features=z['image_features'],
                   mean_image=z['mean_image'],
                   model_version=str(z['model_version']),
                   description=str(z['description']))
    except (OSError, KeyError, ValueError, EOFError) as e:
      raise ValueError(f'{path}: not a monitoring reference ({e})') from None


@dataclasses.dataclass(frozen=True)
class TestResult:
  """One test on one window: its statistic, p-value and verdict."""
  name: str            # BBSD, PREDICTED_CLASS or IMAGE_FEATURES
  statistic_name: str  # e.g. 'KS D'
  statistic: float
  p_value: float       # the test's own p-value (Bonferroni within the test)
  threshold: float     # the level Holm's procedure compared it with
  alarm: bool
  instances: int       # window instances the test used
  detail: str          # what moved most, for people
  # The model version whose outputs were tested (None: the image test).
  model_version: Optional[str] = None

  def line(self) -> str:
    verdict = 'ALARM' if self.alarm else 'ok'
    return (f'[test] {self.name}: {self.statistic_name} {self.statistic:.4f}, '
            f'p = {self.p_value:.2g} {"<=" if self.alarm else ">"} '
            f'{self.threshold:.3g} ({verdict}; {self.detail})')


@dataclasses.dataclass(frozen=True)
class Tests:
  """Every test of one window; `skipped` says which did not run and why."""
  alpha: float
  results: Tuple[TestResult, ...]
  skipped: Tuple[Tuple[str, str], ...]   # (test name, reason)
  reference: Optional[str] = None        # the reference's description

  @property
  def alarm(self) -> bool:
    return any(r.alarm for r in self.results)

  def lines(self) -> List[str]:
    """One line per alarm (what the anomalies list carries)."""
    return [r.line() for r in self.results if r.alarm]

  def to_dict(self) -> Dict:
    return {'alpha': self.alpha, 'reference': self.reference,
            'results': [dataclasses.asdict(r) for r in self.results],
            'skipped': [{'test': t, 'reason': why} for t, why in self.skipped]}


def _ks_columns(window: np.ndarray, reference: np.ndarray
                ) -> Tuple[float, float, int]:
  """(D, Bonferroni p, column) of the column with the smallest KS p-value."""
  ds, ps = [], []
  for j in range(reference.shape[1]):
    result = stats.ks_2samp(window[:, j], reference[:, j], method='asymp')
    ds.append(float(result.statistic))
    ps.append(float(result.pvalue))
    if np.isnan(ps[-1]):
      ps[-1] = 1.0
  j = int(np.argmin(ps))
  return ds[j], min(1.0, ps[j] * reference.shape[1]), j


def bbsd(window_probabilities: np.ndarray, reference: Reference
         ) -> Tuple[float, float, str]:
  """KS per class probability: (D, p, detail)."""
  d, p, j = _ks_columns(np.asarray(window_probabilities, np.float64),
                        reference.probabilities)
  return d, p, (f'largest on P({features.CLASS_NAMES[j]}), class {j}; '
                f'Bonferroni over {reference.probabilities.shape[1]} classes')


def predicted_class(window_classes: np.ndarray, reference: Reference
                    ) -> Tuple[float, float, str]:
  """Chi-square homogeneity of class counts: (chi2, p, detail)."""
  k = features.NUM_CLASSES
  table = np.stack([np.bincount(window_classes, minlength=k)[:k],
                    np.bincount(reference.predicted_classes, minlength=k)[:k]])
  used = table.sum(axis=0) > 0
  chi2, p, _, expected = stats.chi2_contingency(table[:, used],
                                                correction=False)
  ratio = np.zeros(k)
  ratio[used] = table[0, used] - expected[0]
  j = int(np.argmax(np.abs(ratio)))
  share = table[0, j] / table[0].sum()
  ref_share = table[1, j] / table[1].sum()
  return float(chi2), float(p), (
      f'{features.CLASS_NAMES[j]} {share:.1%} of the window vs. '
      f'{ref_share:.1%} of the reference; {int(used.sum()) - 1} d.f.')


def image_space(window_pixels: np.ndarray, reference: Reference
                ) -> Tuple[float, float, str]:
  """KS per image feature: (D, p, detail)."""
  window = image_features(window_pixels)
  d, p, j = _ks_columns(window, reference.image_features)
  return d, p, (f'largest on {FEATURE_NAMES[j]}: window median '
                f'{np.median(window[:, j]):.3g} vs. reference '
                f'{np.median(reference.image_features[:, j]):.3g}; '
                f'Bonferroni over {len(FEATURE_NAMES)} features')


def holm(p_values: Sequence[float], alpha: float
         ) -> Tuple[List[bool], List[float]]:
  """Holm's step-down procedure: (rejected, level each p was compared with).

  Controls the family-wise error rate at `alpha` for any dependence between
  the tests, and rejects at least what Bonferroni rejects.
  """
  m = len(p_values)
  order = np.argsort(p_values, kind='stable')
  rejected, levels = [False] * m, [alpha / m] * m
  still = True
  for rank, i in enumerate(order):
    levels[i] = alpha / (m - rank)
    still = still and p_values[i] <= levels[i]
    rejected[i] = still
  return rejected, levels


def _usable_probabilities(probabilities: Sequence) -> np.ndarray:
  """Mask of rows holding 10 finite numbers in [0, 1]."""
  k = features.NUM_CLASSES
  ok = np.zeros(len(probabilities), bool)
  for i, p in enumerate(probabilities):
    if p is not None and len(p) == k:
      a = np.asarray(p, np.float64)
      ok[i] = bool(np.all(np.isfinite(a)) and np.all((a >= 0) & (a <= 1)))
  return ok


def _usable_pixels(pixels: Sequence[Sequence[int]]) -> np.ndarray:
  return np.array([len(p) == features.NUM_PIXELS for p in pixels], bool)


def _model_tests(reference: Reference, mask: np.ndarray,
                 probabilities: Sequence[Optional[Sequence[float]]],
                 ids: np.ndarray, prefix: str, note: str,
                 raw: List, skipped: List) -> None:
  """BBSD and the class test on the rows in `mask` (one model version)."""
  version = reference.model_version
  ok = mask & _usable_probabilities(probabilities)
  bad = int((mask & ~ok).sum())
  bad_note = (f'; {bad} rows without 10 usable probabilities (missing, NaN, '
              'out of [0, 1]) left out' if bad else '')
  if ok.sum() < MIN_TEST_INSTANCES:
    skipped.append((BBSD, f'{int(ok.sum())} instances of model {version} '
                    f'with usable probabilities, fewer than '
                    f'{MIN_TEST_INSTANCES}{note}{bad_note}'))
  else:
    window = np.array([probabilities[i] for i in np.flatnonzero(ok)],
                      np.float64)
    d, p, detail = bbsd(window, reference)
    raw.append((BBSD, 'KS D', d, p, int(ok.sum()),
                prefix + detail + note + bad_note, version))

  ok = mask & (ids >= 0) & (ids < features.NUM_CLASSES)
  if ok.sum() < MIN_TEST_INSTANCES:
    skipped.append((PREDICTED_CLASS, f'{int(ok.sum())} instances of model '
                    f'{version} with a class id, fewer than '
                    f'{MIN_TEST_INSTANCES}{note}'))
  else:
    chi2, p, detail = predicted_class(ids[ok], reference)
    raw.append((PREDICTED_CLASS, 'chi-square', chi2, p, int(ok.sum()),
                prefix + detail + note, version))


def run(reference: Optional[Reference], pixels: Sequence[Sequence[int]],
        probabilities: Sequence[Optional[Sequence[float]]],
        class_ids: Sequence[Optional[int]], versions: Sequence[str],
        alpha: float = DEFAULT_ALPHA, why_no_reference: str = '',
        others: Optional[Dict[str, Reference]] = None) -> Tests:
  """Every test that can run on the window, Holm-corrected at `alpha`.

  Model-output tests compare each model version's instances with that
  version's own reference: `reference`'s, and those in `others` (version ->
  reference) for windows that span a model rollout. Instances of versions
  without a reference are counted in the detail, never tested against the
  wrong model; rows whose logged outputs are unusable are counted too. The
  image test uses every 784-pixel row (images do not depend on the model).
  """
  if reference is None:
    return Tests(alpha=alpha, results=(), skipped=tuple(
        (t, why_no_reference or 'no reference') for t in TESTS))
  references = {reference.model_version: reference,
                **{v: r for v, r in (others or {}).items()
                   if v != reference.model_version}}
  skipped = []
  raw = []  # (name, statistic name, statistic, p, instances, detail, version)
  versions = np.array([str(v) for v in versions], dtype=object)
  untested = ~np.isin(versions, list(references))
  others_count = int(untested.sum())
  note = (f'; {others_count} instances of model versions without a reference '
          f'left out ({", ".join(sorted(set(versions[untested])))})'
          if others_count else '')
  ids = np.array([-1 if c is None else c for c in class_ids], np.int64)
  several = len({v for v in references if (versions == v).any()}) > 1
  for version, ref in references.items():
    mask = versions == version
    if version != reference.model_version and not mask.any():
      continue
    _model_tests(ref, mask, probabilities, ids,
                 f'model {version}: ' if several else '', note, raw, skipped)

  ok = _usable_pixels(pixels)
  if ok.sum() < MIN_TEST_INSTANCES:
    skipped.append((IMAGE_FEATURES, f'{int(ok.sum())} rows of '
                    f'{features.NUM_PIXELS} pixels, fewer than '
                    f'{MIN_TEST_INSTANCES}'))
  else:
    window = np.array([pixels[i] for i in np.flatnonzero(ok)], np.float64)
    d, p, detail = image_space(window, reference)
    raw.append((IMAGE_FEATURES, 'KS D', d, p, int(ok.sum()), detail, None))

  rejected, levels = holm([r[3] for r in raw], alpha) if raw else ([], [])
  results = tuple(
      TestResult(name=name, statistic_name=sname, statistic=stat, p_value=p,
                 threshold=level, alarm=alarm, instances=n, detail=detail,
                 model_version=version)
      for (name, sname, stat, p, n, detail, version), alarm, level in zip(
          raw, rejected, levels))
  return Tests(alpha=alpha, results=results, skipped=tuple(skipped),
               reference=reference.description)
