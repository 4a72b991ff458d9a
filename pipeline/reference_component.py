"""The `MonitoringReference` component (what it stores: pipeline/reference.py).

Runs after the Trainer: the trained model's outputs on the eval split of the
span it trained on, as an artifact in MLMD that `fmnist monitor` finds through
lineage from the served model version.
"""

import os

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact as artifact_lib
from tfx.types import standard_artifacts

from pipeline import data_gate
from pipeline import reference as reference_lib


class MonitoringReferenceArtifact(artifact_lib.Artifact):
  """A model's outputs on held-out images (`reference.npz`)."""
  TYPE_NAME = reference_lib.TYPE_NAME


@component
def MonitoringReference(  # pylint: disable=invalid-name
    examples: InputArtifact[standard_artifacts.Examples],
    model: InputArtifact[standard_artifacts.Model],
    reference: OutputArtifact[MonitoringReferenceArtifact],
):
  """The trained model's outputs on the eval split (see the module doc)."""
  out = reference_lib.compute(examples.uri, model.uri)
  span = data_gate.span_of(examples)
  description = (f'{len(out["pixels"])} eval images of span {span}, which the '
                 'model did not train on, predicted in the pipeline run')
  reference_lib.write(os.path.join(reference.uri, reference_lib.FILE),
                      out['pixels'], out['probabilities'], description)
  reference.set_int_custom_property('images', len(out['pixels']))
  reference.set_int_custom_property('span', span)
  logging.info('Monitoring reference: %s', description)
