"""The paired comparison and the blessing policy on small hand-made fixtures."""

import numpy as np
import pytest

from fmnist import cli
from pipeline import paired

# 16 test images: both right 5, only the baseline (a) right 1, only the
# candidate (b) right 7, both wrong 3.
A = [1] * 5 + [1] * 1 + [0] * 7 + [0] * 3
B = [1] * 5 + [0] * 1 + [1] * 7 + [0] * 3


def test_mcnemar_matches_hand_computed_counts_and_p_value():
  t = paired.mcnemar_test(A, B)
  assert (t.n, t.both_right, t.only_a_right, t.only_b_right, t.both_wrong) == (
      16, 5, 1, 7, 3)
  # Exact test: 8 discordant pairs, 1 vs 7; two-sided binomial(8, 1/2):
  # 2 * (C(8,0) + C(8,1)) / 2^8 = 18/256.
  assert t.p_value == pytest.approx(18 / 256)
  assert t.accuracy_a == 6 / 16 and t.accuracy_b == 12 / 16
  assert t.delta == pytest.approx(6 / 16)


def test_no_discordant_pairs_is_no_evidence():
  t = paired.mcnemar_test([1, 0, 1], [1, 0, 1])
  assert t.p_value == 1.0 and t.delta == 0.0


def test_per_class_counts_confusions_and_changed_images():
  labels = [0, 0, 0, 1, 1, 2]
  pa = [0, 0, 1, 1, 0, 2]
  pb = [0, 1, 0, 1, 1, 2]
  c = paired.compare_predictions(labels, pa, pb, num_classes=3, resamples=200)
  t0 = c.per_class[0].test
  assert (t0.n, t0.both_right, t0.only_a_right, t0.only_b_right) == (3, 1, 1, 1)
  t1 = c.per_class[1].test
  assert (t1.n, t1.only_a_right, t1.only_b_right) == (2, 0, 1)
  assert c.confusion_a == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
  assert c.confusion_b == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
  assert c.changed == [1, 2, 4]
  assert c.overall.test.delta == pytest.approx(1 / 6)


def test_bootstrap_interval_covers_the_difference_and_has_the_right_width():
  rng = np.random.default_rng(0)
  n = 10_000
  labels = rng.integers(0, 10, n)
  pa = np.where(rng.random(n) < 0.90, labels, (labels + 1) % 10)
  pb = np.where(rng.random(n) < 0.92, labels, (labels + 1) % 10)
  c = paired.compare_predictions(labels, pa, pb, 10)
  o = c.overall
  assert o.delta.low < o.test.delta < o.delta.high
  assert o.accuracy_a.low < o.test.accuracy_a < o.accuracy_a.high
  # Standard error of an accuracy near 0.9 on 10,000 images: 0.3 points.
  assert o.accuracy_a.high - o.accuracy_a.low == pytest.approx(
      2 * 1.96 * np.sqrt(0.9 * 0.1 / n), rel=0.15)
  assert o.delta.low > 0 and o.test.p_value < 1e-3  # 2 points is real here
  same = paired.compare_predictions(labels, pa, pa, 10, resamples=200)
  assert same.overall.delta.low == same.overall.delta.high == 0


def _test(n, only_a, only_b):
  a = [1] * (n - only_b) + [0] * only_b
  b = [1] * (n - only_a - only_b) + [0] * only_a + [1] * only_b
  return paired.mcnemar_test(a, b)


def test_identical_model_is_blessed_with_the_numbers():
  d = paired.BlessingPolicy(min_accuracy=0.5).decide(0.9, _test(1000, 0, 0))
  assert d.blessed
  assert d.reason.startswith('BLESSED')
  assert 'McNemar exact p=1' in d.reason and d.numbers['p_value'] == 1.0


def test_clearly_worse_model_is_blocked_and_the_reason_names_the_test():
  d = paired.BlessingPolicy(min_accuracy=0.5).decide(0.8, _test(1000, 120, 20))
  assert not d.blessed
  assert d.reason.startswith('NOT blessed')
  assert 'WORSE than the baseline' in d.reason and 'McNemar exact p=' in d.reason
  assert '20 only the candidate got right, 120 only the baseline' in d.reason
  assert d.numbers['delta'] == pytest.approx(-0.1)
  assert d.numbers['p_value'] < 1e-15


def test_a_drop_within_noise_passes_and_a_bare_threshold_would_block_it():
  t = _test(10_000, 60, 50)   # 0.1 points lower: sampling noise
  assert paired.BlessingPolicy(min_accuracy=0.5, max_accuracy_drop=0.0).decide(
      0.94, t).blessed
  assert 'within noise' in paired.BlessingPolicy(
      min_accuracy=0.5, max_accuracy_drop=0.0).decide(0.94, t).reason
  assert 'within the allowed drop of 0.0100' in paired.BlessingPolicy(
      min_accuracy=0.5).decide(0.94, t).reason
  assert not paired.BlessingPolicy(min_accuracy=0.5, max_accuracy_drop=0.0,
                                   alpha=1.0).decide(0.94, t).blessed


def test_margin_allows_a_significant_but_small_drop():
  t = _test(10_000, 200, 100)   # 1 point lower, significant
  assert t.p_value < 0.001
  assert not paired.BlessingPolicy(min_accuracy=0.5, max_accuracy_drop=0.0
                                   ).decide(0.94, t).blessed
  assert paired.BlessingPolicy(min_accuracy=0.5, max_accuracy_drop=0.015
                               ).decide(0.94, t).blessed
  # The default margin (1 point) is what retrained seeds of one recipe reach.
  assert paired.BlessingPolicy(min_accuracy=0.5).decide(0.94, t).blessed


def test_value_bar_still_applies_without_a_baseline():
  d = paired.BlessingPolicy(min_accuracy=0.9).decide(0.85, None)
  assert not d.blessed and 'below the required 0.9000' in d.reason
  assert 'no blessed baseline yet' in d.reason


def test_holm_adjusts_like_statsmodels():
  assert paired.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_compare_without_runs_is_a_user_error(tmp_path, capsys):
  assert cli.main(['compare', '--home', str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: no pipeline metadata') and 'Traceback' not in err
  assert cli.main(['compare', '--home', str(tmp_path), '--resamples', '5']) == 2
  assert '--resamples' in capsys.readouterr().err


def test_bad_blessing_alpha_is_a_usage_error(tmp_path, capsys):
  assert cli.main(['pipeline', 'run', '--home', str(tmp_path),
                   '--blessing-alpha', '0']) == 2
  assert capsys.readouterr().err == 'error: --blessing-alpha must be in (0, 1]\n'
