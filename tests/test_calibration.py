"""The ECE metric the Evaluator computes, on inputs with a known answer."""

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from pipeline import calibration


def _ece(rows, num_bins=10):
  key = metric_types.MetricKey(name=calibration.ECE_NAME)
  combiner = calibration._EceCombiner(key, None, num_bins, False)  # pylint: disable=protected-access
  halves = [combiner.create_accumulator(), combiner.create_accumulator()]
  for i, (label, probabilities) in enumerate(rows):
    combiner.add_input(halves[i % 2], metric_types.StandardMetricInputs(
        labels=np.array([label]), predictions=np.array(probabilities),
        example_weights=np.array([1.0])))
  return combiner.extract_output(combiner.merge_accumulators(halves))[key]


def test_perfectly_calibrated_predictions_have_zero_ece():
  # Confidence 0.75 in one bin, right three times out of four.
  p = [0.75, 0.25] + [0.0] * 8
  rows = [(0, p), (0, p), (0, p), (1, p)]
  assert _ece(rows) == pytest.approx(0.0)


def test_overconfident_predictions_have_the_gap_as_ece():
  # Always 0.95 sure, right half the time: ECE = |0.5 - 0.95| = 0.45.
  p = [0.95, 0.05] + [0.0] * 8
  rows = [(0, p), (1, p)] * 3
  assert _ece(rows) == pytest.approx(0.45)


def test_bins_are_weighted_by_their_share():
  sure = [1.0] + [0.0] * 9                  # right: gap 0
  unsure = [0.6, 0.4] + [0.0] * 8           # wrong: gap 0.6
  assert _ece([(0, sure), (0, sure), (0, sure), (1, unsure)]) == pytest.approx(
      0.6 / 4)
