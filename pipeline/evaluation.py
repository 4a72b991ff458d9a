"""TFMA configuration: what 'good enough to push' means.

Metrics on the official test split, overall and per true class; the candidate
is blessed only if its accuracy clears an absolute bar AND does not fall below
the latest blessed model's accuracy by more than the allowed drop.
"""

import tensorflow_model_analysis as tfma

from models import features
from models import signatures

ACCURACY = 'sparse_categorical_accuracy'


def make_eval_config(min_accuracy: float, max_accuracy_drop: float) -> tfma.EvalConfig:
  """EvalConfig with a value threshold and a change threshold on accuracy."""
  accuracy_threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(
          lower_bound={'value': min_accuracy}),
      # Ignored when there is no baseline yet (the first blessed model).
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
          absolute={'value': -max_accuracy_drop - 1e-10}))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name='examples',
          preprocessing_function_names=['transform_features'],
          label_key=features.LABEL_KEY,
          prediction_key=signatures.PROBABILITIES)],
      slicing_specs=[
          tfma.SlicingSpec(),
          tfma.SlicingSpec(feature_keys=[features.LABEL_KEY]),
      ],
      metrics_specs=[
          tfma.MetricsSpec(metrics=[
              tfma.MetricConfig(class_name='ExampleCount'),
              # Thresholds on the overall slice only: a class slice is
              # reported, not gated.
              tfma.MetricConfig(
                  class_name='SparseCategoricalAccuracy',
                  per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                      slicing_specs=[tfma.SlicingSpec()],
                      threshold=accuracy_threshold)]),
              tfma.MetricConfig(class_name='SparseCategoricalCrossentropy'),
              tfma.MetricConfig(class_name='ExpectedCalibrationError',
                                module='pipeline.calibration'),
              # Per-class precision/recall/F1 (top-1) are derived from this
              # matrix (`summary.py`): TFMA's binarized top_k metrics report
              # recall 1.0 for a class that is never predicted.
              tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
          ]),
      ])
