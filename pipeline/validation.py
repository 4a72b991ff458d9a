"""Data checks that decide whether a span may be trained on.

Pure functions over TFDV protos, so they are testable without a pipeline:
schema anomalies come from ExampleValidator; drift of the `train` split
against the previous accepted span is computed here by TFDV with the curated
schema's comparators (Jensen-Shannon for pixels, L-infinity for labels).
"""

from typing import Dict, List, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import features
from pipeline.errors import UserError

TRAINING_ENV = 'TRAINING'
SERVING_ENV = 'SERVING'
DRIFT_SPLIT = features.TRAIN_SPLIT


class DataValidationError(UserError, RuntimeError):
  """A span failed validation; the message names every anomaly."""


def drift_anomalies(
    current: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    previous: Optional[statistics_pb2.DatasetFeatureStatisticsList],
) -> anomalies_pb2.Anomalies:
  """Anomalies of `current` against the schema and, if given, `previous`.

  Without `previous` (the first span) this is a plain schema validation.
  """
  return tfdv.validate_statistics(
      current, schema, environment=TRAINING_ENV, previous_statistics=previous)


def merge(into: anomalies_pb2.Anomalies, extra: anomalies_pb2.Anomalies) -> None:
  """Adds `extra`'s reasons and drift measurements to `into`, without repeats."""
  for name, info in extra.anomaly_info.items():
    if name not in into.anomaly_info:
      into.anomaly_info[name].CopyFrom(info)
      continue
    target = into.anomaly_info[name]
    known = {r.type for r in target.reason}
    target.reason.extend(r for r in info.reason if r.type not in known)
  if extra.HasField('dataset_anomaly_info') and not into.HasField(
      'dataset_anomaly_info'):
    into.dataset_anomaly_info.CopyFrom(extra.dataset_anomaly_info)
  into.drift_skew_info.extend(extra.drift_skew_info)


def describe(anomalies: anomalies_pb2.Anomalies) -> List[str]:
  """One readable line per anomaly: `feature 'x': short: description`."""
  lines = []
  for name, info in sorted(anomalies.anomaly_info.items()):
    for reason in info.reason:
      lines.append(f"feature '{name}': {reason.short_description}: "
                   f'{reason.description}')
  if anomalies.HasField('dataset_anomaly_info'):
    for reason in anomalies.dataset_anomaly_info.reason:
      lines.append(f'dataset: {reason.short_description}: {reason.description}')
  return lines


def has_anomalies(anomalies: anomalies_pb2.Anomalies) -> bool:
  return bool(anomalies.anomaly_info) or bool(
      anomalies.dataset_anomaly_info.reason)


def gate_message(span: int, by_split: Dict[str, anomalies_pb2.Anomalies]) -> str:
  """The error a user sees when a span is blocked ('' when it passes)."""
  problems = [f'  [{split}] {line}'
              for split, anomalies in sorted(by_split.items())
              for line in describe(anomalies)]
  if not problems:
    return ''
  return (f'span {span} was blocked before training: '
          f'{len(problems)} data anomal{"y" if len(problems) == 1 else "ies"}\n'
          + '\n'.join(problems) +
          '\nFix the data and ingest it as a new span, or, if the change is '
          'expected, review and update schema/schema.pbtxt.')
