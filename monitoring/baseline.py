"""The training statistics served traffic is compared with, found in MLMD.

Preferred: the `train` split statistics of the span the served model was
trained on, followed through the lineage the local runner records:
PushedModel <- Pusher(model) <- Trainer(examples) <- Transform(examples) <-
the raw Examples, which StatisticsGen also read. The served version comes from
the request logs (the PushedModel's `pushed_version`); if it is not in MLMD,
the newest pushed model stands in. Without any pushed model: the statistics of
the newest span DataGate accepted. The report says which one was used.
"""

import dataclasses
import os
from typing import Dict, Iterable, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import features
from monitoring.config import MonitorError
from pipeline import lineage as lineage_lib

_BINARY_STATS = 'FeatureStats.pb'   # StatisticsGen since TFX 1.x
_TFRECORD_STATS = 'stats_tfrecord'  # older StatisticsGen outputs
# pipeline.data_gate.STATISTICS_ID_PROPERTY, which DataGate writes on the
# report of an accepted span (importing it would load TFX's components, 3 s
# of every `fmnist monitor`; tests/monitoring/test_baseline.py keeps them equal).
STATISTICS_ID_PROPERTY = 'statistics_id'


@dataclasses.dataclass(frozen=True)
class Baseline:
  statistics: statistics_pb2.DatasetFeatureStatisticsList
  uri: str                       # the statistics artifact (or file) read
  description: str               # for people: where it came from and why
  span: Optional[int] = None
  model_version: Optional[str] = None  # the pushed model it belongs to
  # The pipeline's monitoring reference for that model (a directory), if any.
  reference_uri: Optional[str] = None


def load_split_statistics(
    uri: str, split: str = features.TRAIN_SPLIT
) -> statistics_pb2.DatasetFeatureStatisticsList:
  """One split of a StatisticsGen output, or a statistics file itself.

  Local or gs:// (a Vertex pipeline root).
  """
  candidates = [uri] if not tf.io.gfile.isdir(uri) else [
      os.path.join(uri, f'Split-{split}', _BINARY_STATS),
      os.path.join(uri, f'Split-{split}', _TFRECORD_STATS)]
  for path in candidates:
    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
      continue
    try:
      if path.endswith('.pbtxt'):
        return tfdv.load_stats_text(path)
      if os.path.basename(path) == _TFRECORD_STATS:
        return tfdv.load_statistics(path)
      return tfdv.load_stats_binary(path)
    except Exception as e:  # pylint: disable=broad-except
      raise MonitorError(f'{path}: not a TFDV statistics file ({e})') from None
  raise MonitorError(f'no {split} statistics at {uri} (expected a '
                     f'StatisticsGen output with Split-{split}/{_BINARY_STATS},'
                     ' or a statistics file)')


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
  """Read-only: monitoring never creates or changes the pipeline's MLMD."""
  if not os.path.isfile(metadata_path):
    raise MonitorError(
        f'no training statistics: no pipeline metadata at {metadata_path}; run '
        f'`fmnist pipeline run --home {os.path.dirname(metadata_path)}` first '
        '(or pass --baseline-statistics)')
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return metadata_store.MetadataStore(config)


def _pushed_models(store, version: Optional[str]) -> Iterable:
  """Pushed models: those of `version` first, then the others, newest first."""
  pushed = [a for a in store.get_artifacts_by_type('PushedModel')
            if lineage_lib.property_of(a, 'pushed') == 1]
  pushed.sort(key=lambda a: a.id, reverse=True)
  mine = [a for a in pushed
          if lineage_lib.property_of(a, 'pushed_version') == version]
  return mine + [a for a in pushed if a not in mine]


def from_lineage(metadata_path: str,
                 served_version: Optional[str]) -> Baseline:
  """The served model's training statistics (see the module docstring)."""
  store = open_store(metadata_path)
  lineage = lineage_lib.Lineage(store)
  notes = []
  for pushed in _pushed_models(store, served_version):
    version = lineage_lib.property_of(pushed, 'pushed_version')
    examples = lineage.raw_examples(pushed)
    stats = lineage.statistics_of(examples) if examples else None
    if stats is None:
      notes.append(f'pushed model {version} has no recorded training '
                   'statistics')
      continue
    span = lineage_lib.property_of(examples, 'span')
    how = (f'train statistics of span {span}, which the served model '
           f'{version} was trained on (MLMD lineage)')
    if version != served_version:
      how = (f'train statistics of span {span}, which the newest pushed model '
             f'{version} was trained on (MLMD lineage; the served version '
             f'{served_version} is not in this MLMD)')
    return Baseline(statistics=load_split_statistics(stats.uri), uri=stats.uri,
                    description=how, span=span, model_version=version,
                    reference_uri=lineage.reference_of(pushed))
  return _newest_accepted(store, notes or ['no pushed model in MLMD'])


def reference_uris(metadata_path: str, versions: Iterable[str]
                   ) -> Dict[str, str]:
  """version -> the MonitoringReference URI of the model pushed as that
  version, for the versions MLMD knows and has a reference for."""
  store = open_store(metadata_path)
  lineage = lineage_lib.Lineage(store)
  found = {}
  for version in versions:
    for pushed in _pushed_models(store, version):
      if lineage_lib.property_of(pushed, 'pushed_version') != version:
        break  # only the requested version's pushes come first
      uri = lineage.reference_of(pushed)
      if uri:
        found[version] = uri
        break
  return found


def _newest_accepted(store, notes: List[str]) -> Baseline:
  reports = [a for a in store.get_artifacts_by_type('ExampleAnomalies')
             if lineage_lib.property_of(a, STATISTICS_ID_PROPERTY)]
  if reports:
    newest = max(reports, key=lambda a: (
        lineage_lib.property_of(a, 'span') or 0, a.id))
    (stats,) = store.get_artifacts_by_id(
        [lineage_lib.property_of(newest, STATISTICS_ID_PROPERTY)])
    span = lineage_lib.property_of(newest, 'span')
    return Baseline(
        statistics=load_split_statistics(stats.uri), uri=stats.uri, span=span,
        description=(f'train statistics of span {span}, the newest span '
                     f'DataGate accepted ({"; ".join(notes)})'))
  raise MonitorError(
      'no training statistics: the pipeline has not accepted any span yet; '
      'run `fmnist pipeline run` first (or pass --baseline-statistics)')


def from_path(uri: str) -> Baseline:
  return Baseline(statistics=load_split_statistics(uri), uri=uri,
                  description=f'train statistics given with '
                              f'--baseline-statistics ({uri})')
