"""The comparison page and text on synthetic predictions (no pipeline run)."""

import numpy as np

from models import features
from pipeline import compare
from pipeline import paired


def _comparison(n=300, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, features.NUM_CLASSES, n)
  pa = np.where(rng.random(n) < 0.8, labels, (labels + 1) % 10)
  pb = np.where(rng.random(n) < 0.9, labels, (labels + 2) % 10)
  result = paired.compare_predictions(labels, pa, pb, features.NUM_CLASSES,
                                      resamples=200)
  return compare.Comparison(
      a=compare.Side('baseline of run r1', '/m/a', None),
      b=compare.Side('run r1', '/m/b', None), examples_uri='/e',
      labels=labels, images=rng.integers(0, 256, (n, 28, 28)).astype(np.uint8),
      predicted_a=pa, predicted_b=pb, paired=result,
      holm_p=dict(enumerate(paired.holm(
          [result.per_class[c].test.p_value for c in range(10)]))))


def test_page_shows_error_bars_confusion_difference_and_changed_images(tmp_path):
  c = _comparison()
  page = compare.write_html(c, str(tmp_path))
  text = open(page).read()
  fixed = int(np.sum((c.predicted_a != c.labels) & (c.predicted_b == c.labels)))
  broken = int(np.sum((c.predicted_a == c.labels) & (c.predicted_b != c.labels)))
  assert f'Fixed by B (A wrong, B right): {fixed}' in text
  assert f'Broken by B (A right, B wrong): {broken}' in text
  shown = min(fixed, compare.MAX_THUMBNAILS) + min(
      broken, compare.MAX_THUMBNAILS)
  # two plots + one thumbnail per shown changed image (three groups)
  assert text.count('data:image/png;base64,') >= 2 + shown
  for name in features.CLASS_NAMES:
    assert name in text


def test_text_reports_both_accuracies_delta_interval_and_p_value():
  c = _comparison()
  out = compare.format_text(c)
  t = c.paired.overall.test
  line = next(l for l in out.splitlines() if l.strip().startswith('accuracy '))
  assert line.split()[1:4] == [f'{t.accuracy_a:.4f}', f'{t.accuracy_b:.4f}',
                               f'{t.delta:+.4f}']
  assert paired.interval_text(c.paired.overall.delta, True) in line
  assert 'B is significantly better' in out  # 80 % vs 90 % on 300 images
