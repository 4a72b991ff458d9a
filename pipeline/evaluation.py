"""TFMA configuration: what 'good enough to push' means.

Metrics on the official test split, overall and per true class, of the
candidate and (when there is one) the latest blessed model. The EvalConfig
carries no thresholds: the blessing is decided on evidence by the `Blessing`
step after the Evaluator (`blessing.py`, `paired.BlessingPolicy`), which reads
this EvalResult and tests the candidate against the baseline on the same
test images.
"""

import tensorflow_model_analysis as tfma

from models import features
from models import signatures

ACCURACY = 'sparse_categorical_accuracy'


def make_eval_config() -> tfma.EvalConfig:
  """What TFMA computes for the candidate and the baseline (no thresholds)."""
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
              tfma.MetricConfig(class_name='SparseCategoricalAccuracy'),
              tfma.MetricConfig(class_name='SparseCategoricalCrossentropy'),
              tfma.MetricConfig(class_name='ExpectedCalibrationError',
                                module='pipeline.calibration'),
              # Per-class precision/recall/F1 (top-1) are derived from this
              # matrix (`summary.py`): TFMA's binarized top_k metrics report
              # recall 1.0 for a class that is never predicted.
              tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
          ]),
      ])
