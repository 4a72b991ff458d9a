"""Finding the served model's training statistics through MLMD lineage."""

import os
import shutil

import pytest

from mlmd_fixture import PipelineStore  # pylint: disable=g-bad-import-order
from monitoring import baseline
from monitoring.config import MonitorError


@pytest.fixture
def two_spans(tmp_path, statistics_uri):
  """Span 1 trained and pushed as '7', span 2 as '8' (distinct statistics)."""
  second = str(tmp_path / 'statistics-2')
  shutil.copytree(statistics_uri, second)
  path = str(tmp_path / 'metadata.sqlite')
  store = PipelineStore(path)
  root = str(tmp_path / 'tfx')
  store.record_run(root, 1, statistics_uri, '7')
  store.record_run(root, 2, second, '8')
  return path, second


def test_the_served_version_leads_to_its_span_statistics(two_spans,
                                                         statistics_uri):
  path, second = two_spans
  found = baseline.from_lineage(path, '7')
  assert (found.span, found.model_version, found.uri) == (1, '7',
                                                          statistics_uri)
  assert 'served model 7 was trained on (MLMD lineage)' in found.description
  assert found.statistics.datasets[0].num_examples == 3000
  found = baseline.from_lineage(path, '8')
  assert (found.span, found.uri) == (2, second)


def test_an_unknown_version_falls_back_to_the_newest_pushed_model(two_spans):
  path, second = two_spans
  found = baseline.from_lineage(path, '99')
  assert (found.span, found.model_version, found.uri) == (2, '8', second)
  assert 'the served version 99 is not in this MLMD' in found.description


def test_without_a_pushed_model_the_newest_accepted_span(tmp_path,
                                                         statistics_uri):
  path = str(tmp_path / 'metadata.sqlite')
  PipelineStore(path).record_run(str(tmp_path / 'tfx'), 4, statistics_uri,
                                 pushed_version=None)
  found = baseline.from_lineage(path, '7')
  assert found.span == 4 and found.model_version is None
  assert 'the newest span DataGate accepted' in found.description


def test_no_pipeline_run_is_a_clear_error_and_creates_nothing(tmp_path):
  path = str(tmp_path / 'metadata.sqlite')
  with pytest.raises(MonitorError, match='no training statistics: no '
                     'pipeline metadata at .*fmnist pipeline run'):
    baseline.from_lineage(path, '7')
  assert not os.path.exists(path)
  PipelineStore(path)  # an MLMD store without any run
  with pytest.raises(MonitorError, match='has not accepted any span yet'):
    baseline.from_lineage(path, '7')


def test_missing_statistics_files_are_named(tmp_path):
  with pytest.raises(MonitorError, match='no train statistics at'):
    baseline.load_split_statistics(str(tmp_path))
  bad = tmp_path / 'FeatureStats.pb'
  bad.write_bytes(b'\xff not a proto')
  with pytest.raises(MonitorError, match='not a TFDV statistics file'):
    baseline.load_split_statistics(str(bad))


def test_the_accepted_statistics_property_is_data_gates():
  from pipeline import data_gate  # pylint: disable=g-import-not-at-top
  assert baseline.STATISTICS_ID_PROPERTY == data_gate.STATISTICS_ID_PROPERTY
