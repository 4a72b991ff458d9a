"""Class counts per split from the pipeline's own TFDV statistics.

StatisticsGen receives the curated schema, where the label is categorical, so
its output holds the exact frequency of every class per split (`top_values`,
sample rate 1). The statistics artifact does not carry the span itself; it is
found through MLMD lineage: the newest StatisticsGen run whose input Examples
have the span's number.
"""

import os
from typing import Dict, Optional

from ml_metadata.proto import metadata_store_pb2
import numpy as np
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from models import features
from pipeline import configs
from pipeline import summary


def _input_span(store, artifact_id: int) -> Optional[int]:
  """The span of the Examples the producing execution read, if any."""
  executions = [e.execution_id for e in store.get_events_by_artifact_ids(
      [artifact_id]) if e.type == metadata_store_pb2.Event.OUTPUT]
  inputs = [e.artifact_id for e in store.get_events_by_execution_ids(
      executions) if e.type == metadata_store_pb2.Event.INPUT]
  for a in store.get_artifacts_by_id(inputs):
    if 'span' in a.custom_properties:
      return a.custom_properties['span'].int_value
  return None


def _counts(mlmd_artifact) -> Dict[str, np.ndarray]:
  artifact = standard_artifacts.ExampleStatistics()
  artifact.set_mlmd_artifact(mlmd_artifact)
  out = {}
  for split in artifact_utils.decode_split_names(artifact.split_names):
    stats = stats_artifact_utils.load_statistics(artifact, split).proto()
    for feature in stats.datasets[0].features:
      if list(feature.path.step) == [features.LABEL_KEY]:
        counts = np.zeros(features.NUM_CLASSES, np.int64)
        for top in feature.string_stats.top_values:
          if top.value.isdigit() and int(top.value) < features.NUM_CLASSES:
            counts[int(top.value)] = int(top.frequency)
        out[split] = counts
  return out


def label_counts(home: str, span: int):
  """(split -> [10] counts, statistics uri) of the newest StatisticsGen
  output for `span`, or None when the pipeline has not run on it."""
  cfg = configs.PipelineConfig.from_home(home)
  if not cfg.metadata_path or not os.path.exists(cfg.metadata_path):
    return None
  store = summary.open_store(cfg)
  for artifact in sorted(store.get_artifacts_by_type('ExampleStatistics'),
                         key=lambda a: a.id, reverse=True):
    if _input_span(store, artifact.id) == span:
      counts = _counts(artifact)
      if counts:
        return counts, artifact.uri
  return None
