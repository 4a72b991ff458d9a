"""Statistics of served instances and their checks, all computed by TFDV.

Served instances become an Arrow RecordBatch (`image`, and the model's
`predicted_class`) and TFDV's in-memory statistics path, the same generators
StatisticsGen runs in Beam, with the same options (defaults plus the schema).
Three `tfdv.validate_statistics` calls then give the anomalies:
- schema: the served statistics in the SERVING environment (domain, shape);
- skew: the training statistics against the served ones, with the schema's
  skew comparators;
- drift: the served statistics against the previous window's, with the drift
  comparators.

The predicted class is the label-free drift signal: served data has no labels,
but the share of each predicted class should follow the training label
distribution. So the monitoring schema adds `predicted_class` (categorical,
L-infinity comparators), and the training baseline carries the training
`label` statistics under that name.
"""

import dataclasses
import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import features
from pipeline import validation

PREDICTED_CLASS_KEY = 'predicted_class'
SKEW = 'skew'
DRIFT = 'drift'
_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: 'L-infinity',
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE:
        'Jensen-Shannon',
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE:
        'normalized absolute difference',
}


def monitoring_schema(curated: schema_pb2.Schema, skew_linf: float,
                      drift_linf: float) -> schema_pb2.Schema:
  """The curated schema plus the predicted class, with explicit comparators."""
  schema = schema_pb2.Schema()
  schema.CopyFrom(curated)
  feature = schema.feature.add(name=PREDICTED_CLASS_KEY, type=schema_pb2.INT)
  feature.int_domain.min = 0
  feature.int_domain.max = features.NUM_CLASSES - 1
  feature.int_domain.is_categorical = True
  feature.presence.min_fraction = 1.0
  feature.presence.min_count = 1
  feature.shape.SetInParent()  # a scalar: one class per instance
  feature.skew_comparator.infinity_norm.threshold = skew_linf
  feature.drift_comparator.infinity_norm.threshold = drift_linf
  return schema


def training_baseline(
    training: statistics_pb2.DatasetFeatureStatisticsList
) -> statistics_pb2.DatasetFeatureStatisticsList:
  """Training statistics whose label distribution also stands for predictions.

  TFDV compares features by name, so the `label` statistics are copied as
  `predicted_class`: the distribution a healthy model's predictions follow.
  """
  baseline = statistics_pb2.DatasetFeatureStatisticsList()
  baseline.CopyFrom(training)
  for dataset in baseline.datasets:
    labels = [f for f in dataset.features
              if list(f.path.step) == [features.LABEL_KEY]]
    if labels and not any(list(f.path.step) == [PREDICTED_CLASS_KEY]
                          for f in dataset.features):
      copy = dataset.features.add()
      copy.CopyFrom(labels[0])
      copy.path.step[:] = [PREDICTED_CLASS_KEY]
  return baseline


def _list_array(rows: Sequence[Sequence[int]]) -> pa.Array:
  """int64 lists without a Python object per value (784 per instance)."""
  lengths = np.fromiter((len(r) for r in rows), np.int64, count=len(rows))
  offsets = np.zeros(len(rows) + 1, np.int32)
  np.cumsum(lengths, out=offsets[1:])
  values = np.fromiter(itertools.chain.from_iterable(rows), np.int64,
                       count=int(offsets[-1]))
  return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def served_statistics(
    pixels: Sequence[Sequence[int]], class_ids: Sequence[Optional[int]],
    schema: schema_pb2.Schema) -> statistics_pb2.DatasetFeatureStatisticsList:
  """TFDV statistics of served instances (rows may have any length).

  A missing class id is a missing value, which the schema's presence
  constraint reports.
  """
  classes = pa.array([None if c is None else [c] for c in class_ids],
                     pa.list_(pa.int64()))
  batch = pa.RecordBatch.from_arrays([_list_array(pixels), classes],
                                     [features.IMAGE_KEY, PREDICTED_CLASS_KEY])
  # In memory: the window is loaded already and a Beam pipeline would only
  # add its start-up; the generators and options are StatisticsGen's, and
  # test_statistics.py checks the result equals tfdv.GenerateStatistics's.
  return stats_impl.generate_statistics_in_memory(
      batch, tfdv.StatsOptions(schema=schema))


@dataclasses.dataclass(frozen=True)
class Measurement:
  """One divergence TFDV measured, against the threshold it used."""
  feature: str
  check: str        # SKEW (vs. training) or DRIFT (vs. the previous window)
  measure: str      # 'Jensen-Shannon', 'L-infinity'
  value: float
  threshold: float

  @property
  def alert(self) -> bool:
    return self.value > self.threshold


def _measurements(anomalies: anomalies_pb2.Anomalies,
                  check: str) -> List[Measurement]:
  out = []
  for info in anomalies.drift_skew_info:
    found = (info.skew_measurements if check == SKEW
             else info.drift_measurements)
    for m in found:
      out.append(Measurement(
          feature='.'.join(info.path.step), check=check,
          measure=_MEASURE_NAMES.get(m.type, str(m.type)),
          value=float(m.value), threshold=float(m.threshold)))
  return out


def comparator_anomalies(
    anomalies: anomalies_pb2.Anomalies) -> anomalies_pb2.Anomalies:
  """Only the comparator (skew/drift) reasons of `anomalies`.

  The skew call also validates the training statistics, and the drift call
  repeats the served data's schema anomalies; each belongs to another check.
  """
  out = anomalies_pb2.Anomalies()
  out.CopyFrom(anomalies)
  out.ClearField('dataset_anomaly_info')
  for name in list(out.anomaly_info):
    info = out.anomaly_info[name]
    keep = [r for r in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(
        r.type).startswith('COMPARATOR_')]
    if not keep:
      del out.anomaly_info[name]
      continue
    del info.reason[:]
    info.reason.extend(keep)
  return out


@dataclasses.dataclass(frozen=True)
class Checks:
  """What TFDV found, per check; `drift` is None without a previous window."""
  schema: anomalies_pb2.Anomalies
  skew: anomalies_pb2.Anomalies
  drift: Optional[anomalies_pb2.Anomalies]
  measurements: Tuple[Measurement, ...]

  def by_check(self) -> List[Tuple[str, anomalies_pb2.Anomalies]]:
    found = [('schema', self.schema), (SKEW, self.skew)]
    if self.drift is not None:
      found.append((DRIFT, self.drift))
    return found

  def lines(self) -> List[str]:
    """One readable line per anomaly, tagged with its check."""
    return [f'[{check}] {line}' for check, anomalies in self.by_check()
            for line in validation.describe(anomalies)]

  @property
  def healthy(self) -> bool:
    return not any(validation.has_anomalies(a) for _, a in self.by_check())


def check(served: statistics_pb2.DatasetFeatureStatisticsList,
          schema: schema_pb2.Schema,
          baseline: statistics_pb2.DatasetFeatureStatisticsList,
          previous: Optional[statistics_pb2.DatasetFeatureStatisticsList] = None
          ) -> Checks:
  """Schema, skew (vs. `baseline`, see training_baseline) and drift checks."""
  schema_anomalies = tfdv.validate_statistics(
      served, schema, environment=validation.SERVING_ENV)
  # `statistics` is the training side here; `serving_statistics` is compared
  # to it with each feature's skew_comparator.
  skew = tfdv.validate_statistics(
      baseline, schema, environment=validation.TRAINING_ENV,
      serving_statistics=served)
  measurements = _measurements(skew, SKEW)
  drift = None
  if previous is not None:
    drift = tfdv.validate_statistics(
        served, schema, environment=validation.SERVING_ENV,
        previous_statistics=previous)
    measurements += _measurements(drift, DRIFT)
    drift = comparator_anomalies(drift)
  return Checks(schema=schema_anomalies, skew=comparator_anomalies(skew),
                drift=drift, measurements=tuple(measurements))
