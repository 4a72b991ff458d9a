"""DataGate: the component that stops a run on bad or drifted data.

TFX's ExampleValidator records anomalies but lets the run go on. DataGate reads
them, adds TFDV's drift check of this span's `train` statistics against the
previous accepted span (chosen by `PreviousAcceptedSpanStrategy`), writes the
merged anomalies, and fails the run with every anomaly named if there is any.
Only a span that passes gets a published `report`, which is what marks it
"accepted" for the next span's drift baseline.
"""

import os

from absl import logging
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import writer_utils

from tensorflow_metadata.proto.v0 import anomalies_pb2

from pipeline import validation

ANOMALIES_FILE = 'SchemaDiff.pb'  # ExampleValidator's file name and layout
REPORT_FILE = 'anomalies.txt'
# On an accepted report: the id of the statistics artifact it accepted.
STATISTICS_ID_PROPERTY = 'statistics_id'


def span_of(artifact: types.Artifact) -> int:
  """The span of an artifact (ExampleGen records it as a custom property)."""
  if artifact.has_custom_property('span'):
    return artifact.get_int_custom_property('span')
  return getattr(artifact, 'span', 0) or 0


def _read_anomalies(artifact: types.Artifact, split: str) -> anomalies_pb2.Anomalies:
  path = os.path.join(artifact_utils.get_split_uri([artifact], split),
                      ANOMALIES_FILE)
  return anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))


@component
def DataGate(  # pylint: disable=invalid-name
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    report: OutputArtifact[standard_artifacts.ExampleAnomalies],
    baseline_statistics: InputArtifact[
        standard_artifacts.ExampleStatistics] = None,
):
  """Blocks the run if the span has schema anomalies or drifted."""
  span = span_of(examples)
  schema_proto = io_utils.SchemaReader().read(
      io_utils.get_only_uri_in_dir(schema.uri))
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  by_split = {split: _read_anomalies(anomalies, split) for split in splits}

  current = stats_artifact_utils.load_statistics(
      statistics, validation.DRIFT_SPLIT).proto()
  previous = None
  if baseline_statistics is not None:
    previous = stats_artifact_utils.load_statistics(
        baseline_statistics, validation.DRIFT_SPLIT).proto()
    logging.info('Drift baseline: statistics %s', baseline_statistics.uri)
  else:
    logging.info('No accepted earlier span: drift check skipped.')
  drift = validation.drift_anomalies(current, schema_proto, previous)
  # Schema anomalies of the drift split are already in ExampleValidator's.
  validation.merge(
      by_split.setdefault(validation.DRIFT_SPLIT, anomalies_pb2.Anomalies()),
      drift)

  report.span = span
  report.set_int_custom_property(STATISTICS_ID_PROPERTY, statistics.id)
  report.split_names = artifact_utils.encode_split_names(sorted(by_split))
  for split, split_anomalies in by_split.items():
    writer_utils.write_anomalies(
        os.path.join(artifact_utils.get_split_uri([report], split),
                     ANOMALIES_FILE), split_anomalies)
  message = validation.gate_message(span, by_split)
  io_utils.write_string_file(os.path.join(report.uri, REPORT_FILE),
                             message or 'no anomalies\n')
  if message:
    raise validation.DataValidationError(message)
  logging.info('Span %s passed schema and drift validation.', span)


class PreviousAcceptedSpanStrategy(resolver.ResolverStrategy):
  """Resolves the statistics of the newest accepted span older than this one.

  Inputs: `examples` (this run's ExampleGen output), `statistics` (all
  StatisticsGen outputs of the pipeline) and `accepted` (DataGate reports, one
  per span that passed, naming the statistics they accepted). A rerun of the
  same span resolves the same baseline, so it stays cached; a blocked span is
  never used as a baseline.
  """

  def resolve_artifacts(self, store, input_dict):
    del store  # everything needed is in the input channels
    current = max((span_of(a) for a in input_dict['examples']), default=0)
    older = [r for r in input_dict.get('accepted', []) if span_of(r) < current]
    stats_by_id = {s.id: s for s in input_dict.get('statistics', [])}
    baseline = []
    if older:
      newest = max(older, key=lambda r: (span_of(r), r.id))
      accepted_id = newest.get_int_custom_property(STATISTICS_ID_PROPERTY)
      baseline = [stats_by_id[accepted_id]] if accepted_id in stats_by_id else []
    return {
        'examples': input_dict['examples'],
        'statistics': baseline,
        'accepted': [],
    }
