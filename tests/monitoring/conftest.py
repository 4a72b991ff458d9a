"""Fixtures: real images, TFDV training statistics, a pipeline home, logs.

Served traffic is real test-set images written by the proxy's own request-log
sink; the "model" answers with the true label (a perfect model), so the
predicted-class distribution is the test set's label distribution. Training
statistics are TFDV's, from real training images, laid out like a
StatisticsGen output and recorded in a real MLMD store.
"""

import os
import sys

import numpy as np
import pytest

# The Vertex and BigQuery fakes live next to the Vertex and serving tests
# (imported by name there too).
for _sub in ('vertex', 'serving'):
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), _sub))

from mlmd_fixture import PipelineStore  # pylint: disable=g-import-not-at-top,g-bad-import-order
from monitor_testenv import DATASET_DIR, VERSION  # pylint: disable=g-import-not-at-top,g-bad-import-order


@pytest.fixture(scope='session')
def test_images():
  """(images uint8 [2000,28,28], labels): the first official test images."""
  from pipeline import ingest
  return ingest.read_idx_pair(DATASET_DIR, ingest.TEST_FILES, limit=2000)


@pytest.fixture(scope='session')
def statistics_uri(tmp_path_factory):
  """A StatisticsGen-like output: TFDV statistics of 3000 real train images."""
  import pyarrow as pa
  import tensorflow_data_validation as tfdv
  from tensorflow_data_validation.statistics import stats_impl
  from models import features
  from pipeline import configs
  from pipeline import ingest
  images, labels = ingest.read_idx_pair(DATASET_DIR, ingest.TRAIN_FILES,
                                        limit=3000)
  flat = images.reshape(len(images), -1).astype(np.int64)
  batch = pa.RecordBatch.from_arrays([
      pa.array(list(flat), pa.list_(pa.int64())),
      pa.array([[int(y)] for y in labels], pa.list_(pa.int64()))],
                                     [features.IMAGE_KEY, features.LABEL_KEY])
  schema = tfdv.load_schema_text(
      os.path.join(configs.DEFAULT_SCHEMA_DIR, 'schema.pbtxt'))
  stats = stats_impl.generate_statistics_in_memory(
      batch, tfdv.StatsOptions(schema=schema))
  uri = str(tmp_path_factory.mktemp('StatisticsGen') / 'statistics' / '3')
  os.makedirs(os.path.join(uri, 'Split-train'))
  with open(os.path.join(uri, 'Split-train', 'FeatureStats.pb'), 'wb') as f:
    f.write(stats.SerializeToString())
  return uri


@pytest.fixture
def home(tmp_path, statistics_uri):
  """A pipeline home: span 1 accepted, trained on and pushed as VERSION."""
  home = str(tmp_path / 'home')
  os.makedirs(os.path.join(home, 'data', 'span-1'))
  PipelineStore(os.path.join(home, 'metadata.sqlite')).record_run(
      os.path.join(home, 'tfx'), 1, statistics_uri, VERSION)
  return home


@pytest.fixture
def monitor(home, capsys):
  """Runs `fmnist monitor --home HOME ...`: (exit code, stdout, stderr)."""
  from fmnist import cli

  def run(*args):
    status = cli.main(['monitor', '--home', home, *args])
    out, err = capsys.readouterr()
    return status, out, err
  return run
