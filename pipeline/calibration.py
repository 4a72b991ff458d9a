"""Expected calibration error (ECE) as a TFMA metric.

TFMA 0.47 has calibration plots for binary models but no multi-class ECE.
This is the standard top-1 definition: bin examples by the probability of
the predicted class; ECE = sum over bins of (bin share) * |accuracy - mean
confidence|. The Evaluator loads it by module path (`evaluation.py`), so it
runs wherever the Evaluator runs, locally or in the pipeline image.
"""

import dataclasses
from typing import Dict, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.proto import config_pb2

ECE_NAME = 'expected_calibration_error'


class ExpectedCalibrationError(metric_types.Metric):
  """Top-1 expected calibration error with `num_bins` equal-width bins."""

  def __init__(self, name: str = ECE_NAME, num_bins: int = 15):
    # One computation per model (candidate and baseline) and output.
    super().__init__(metric_util.merge_per_key_computations(_ece_computations),
                     name=name, num_bins=num_bins)


def _ece_computations(
    name: str = ECE_NAME,
    num_bins: int = 15,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = '',
    output_name: str = '',
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
  key = metric_types.MetricKey(name=name, model_name=model_name,
                               output_name=output_name,
                               example_weighted=example_weighted)
  return [metric_types.MetricComputation(
      keys=[key], preprocessors=None,
      combiner=_EceCombiner(key, eval_config, num_bins, example_weighted))]


@dataclasses.dataclass
class _Bins:
  weight: np.ndarray
  confidence: np.ndarray  # weighted sum of top-1 probabilities
  correct: np.ndarray     # weighted count of correct top-1 predictions


class _EceCombiner(beam.CombineFn):
  """Accumulates per-bin weight, confidence and correctness."""

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[config_pb2.EvalConfig], num_bins: int,
               example_weighted: bool):
    self._key = key
    self._eval_config = eval_config
    self._num_bins = num_bins
    self._example_weighted = example_weighted

  def create_accumulator(self) -> _Bins:
    return _Bins(*(np.zeros(self._num_bins) for _ in range(3)))

  def add_input(self, bins: _Bins,
                element: metric_types.StandardMetricInputs) -> _Bins:
    for label, prediction, weight in metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config,
        model_name=self._key.model_name, output_name=self._key.output_name,
        example_weighted=self._example_weighted, flatten=False):
      probabilities = np.asarray(prediction, np.float64).reshape(-1)
      predicted = int(np.argmax(probabilities))
      confidence = float(probabilities[predicted])
      b = min(int(confidence * self._num_bins), self._num_bins - 1)
      w = float(metric_util.safe_to_scalar(weight))
      bins.weight[b] += w
      bins.confidence[b] += w * confidence
      bins.correct[b] += w * (predicted == int(np.asarray(label).reshape(-1)[0]))
    return bins

  def merge_accumulators(self, accumulators: List[_Bins]) -> _Bins:
    accumulators = iter(accumulators)
    total = next(accumulators)
    for bins in accumulators:
      total.weight += bins.weight
      total.confidence += bins.confidence
      total.correct += bins.correct
    return total

  def extract_output(self, bins: _Bins) -> Dict[metric_types.MetricKey, float]:
    total = bins.weight.sum()
    if not total:
      return {self._key: float('nan')}
    # sum_b (n_b / N) * |acc_b - conf_b| == sum_b |correct_b - conf_sum_b| / N
    return {self._key: float(np.abs(bins.correct - bins.confidence).sum() / total)}


metric_types.register_metric(ExpectedCalibrationError)
