"""Blessing on evidence: the step between TFMA's Evaluator and the Pusher.

The Evaluator (TFMA) evaluates the candidate and the latest blessed model on
the test split and writes its EvalResult; it carries no thresholds, so its own
ModelBlessing output has no `blessed` property and no resolver or Pusher uses
it. `Blessing` reads TFMA's accuracy of the candidate, recomputes both models'
predictions on the same test images (`predictions.py`), applies
`paired.BlessingPolicy` (value bar + McNemar's exact test with a margin) and
writes the one ModelBlessing that the Pusher and `LatestBlessedModel` use,
with the decision and its numbers (`decision.json`, custom property `reason`).
"""

import json
import os

from absl import logging
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from pipeline import data_gate
from pipeline import evaluation
from pipeline import paired
from pipeline import predictions

DECISION_FILE = 'decision.json'
REASON_PROPERTY = 'reason'


def candidate_accuracy(evaluation_uri: str) -> float:
  """The candidate's overall accuracy in TFMA's EvalResult."""
  result = tfma.load_eval_result(evaluation_uri, model_name='candidate')
  if result.slicing_metrics is None or not result.slicing_metrics:
    # Without a baseline TFMA names no model.
    result = tfma.load_eval_result(evaluation_uri)
  overall = dict(result.slicing_metrics)[()]['']['']
  return float(overall[evaluation.ACCURACY]['doubleValue'])


def decide(examples_uri: str, model_uri: str, evaluation_uri: str,
           policy: paired.BlessingPolicy,
           baseline_uri: str = None) -> paired.Decision:
  """The policy's decision for a candidate (and its baseline, if any)."""
  accuracy = candidate_accuracy(evaluation_uri)
  test = None
  if baseline_uri:
    split = predictions.read_split(examples_uri)
    candidate = predictions.predict(model_uri, split.serialized)
    baseline = predictions.predict(baseline_uri, split.serialized)
    test = paired.mcnemar_test(baseline == split.labels,
                               candidate == split.labels)
    if abs(test.accuracy_b - accuracy) > 1e-6:
      logging.warning('Recomputed accuracy %.6f differs from TFMA %.6f',
                      test.accuracy_b, accuracy)
  return policy.decide(accuracy, test)


@component
def Blessing(  # pylint: disable=invalid-name
    examples: InputArtifact[standard_artifacts.Examples],
    model: InputArtifact[standard_artifacts.Model],
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    min_accuracy: Parameter[float],
    max_accuracy_drop: Parameter[float],
    alpha: Parameter[float],
    baseline_model: InputArtifact[standard_artifacts.Model] = None,
):
  """Blesses the candidate unless the policy calls it worse (see module doc)."""
  policy = paired.BlessingPolicy(min_accuracy=min_accuracy,
                                 max_accuracy_drop=max_accuracy_drop,
                                 alpha=alpha)
  decision = decide(examples.uri, model.uri, evaluation.uri, policy,
                    baseline_model.uri if baseline_model is not None else None)
  # The properties TFX's Evaluator sets, which LatestBlessedModelStrategy and
  # the Pusher read.
  blessing.set_string_custom_property('current_model', model.uri)
  blessing.set_int_custom_property('current_model_id', model.id)
  if baseline_model is not None:
    blessing.set_string_custom_property('baseline_model', baseline_model.uri)
    blessing.set_int_custom_property('baseline_model_id', baseline_model.id)
  blessing.set_int_custom_property('blessed', int(decision.blessed))
  blessing.set_string_custom_property(REASON_PROPERTY, decision.reason)
  io_utils.write_string_file(
      os.path.join(blessing.uri, 'BLESSED' if decision.blessed
                   else 'NOT_BLESSED'), '')
  io_utils.write_string_file(
      os.path.join(blessing.uri, DECISION_FILE),
      json.dumps({'blessed': decision.blessed, 'reason': decision.reason,
                  'numbers': decision.numbers,
                  'span': data_gate.span_of(examples)}, indent=1))
  logging.info('%s', decision.reason)


class BlessingExecutor(Blessing.EXECUTOR_SPEC.executor_class,
                       evaluator_executor.Executor):
  """Blessing's executor, typed as an Evaluator's for TFX's Vertex entrypoint.

  On Vertex, artifacts are named, not numbered: the container entrypoint
  hands executors hashed ids and, for Evaluator executors only, turns a
  ModelBlessing's `current_model_id`/`baseline_model_id` back into the
  model's metadata name. `LatestBlessedModel` compiles into the query
  `name="<current_model_id>"`, so without that a Vertex run never finds its
  baseline (found by `fmnist pipeline dry-run`, docs/vertex.md). `Do` is the
  function component's; nothing of the Evaluator runs.
  """


# A Beam executor (through the Evaluator), so it needs a Beam executor spec.
Blessing.EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(BlessingExecutor)
