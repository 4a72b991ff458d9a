"""Request logging: sampling, rotation, BigQuery rows, drops never fail serving."""

import glob
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from serving import app as app_lib
from serving import config as cfg_lib
from serving import metrics as metrics_lib
from serving import request_log

import fake_servers  # pylint: disable=g-bad-import-order
from asgi_client import AppClient  # pylint: disable=g-bad-import-order
from model_fixture import make_config  # pylint: disable=g-bad-import-order

PREDICT = '/v1/models/fmnist:predict'


def _served(n=2, request_id='0123456789abcdef0123'):
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.ones(10), n).astype(np.float32)
  return request_log.Served(
      timestamp=1_700_000_000.25, request_id=request_id, route='friendly',
      model_name='fmnist', model_version='4',
      pixels=rng.integers(0, 256, (n, 784)).astype(np.float32),
      probabilities=probs, class_ids=probs.argmax(1),
      class_names=['Dress'] * n)


def _value(metrics, name, **labels):
  return metrics.registry.get_sample_value(name, labels) or 0.0


def test_jsonl_rotates_and_renames_complete_files(tmp_path):
  m = metrics_lib.Metrics()
  logger = request_log.RequestLogger(
      request_log.JsonlSink(str(tmp_path), max_bytes=20_000, max_seconds=3600),
      sample_rate=1.0, queue_size=100, metrics=m)
  logger.start()
  for _ in range(10):
    logger.log(_served(2))
  logger.close()
  files = sorted(glob.glob(str(tmp_path / '*.jsonl')))
  assert len(files) > 1  # ~4 KB per record, 20 KB files
  assert not glob.glob(str(tmp_path / '*.inprogress'))
  rows = [json.loads(l) for f in files for l in open(f)]
  assert len(rows) == 20
  assert rows[0]['timestamp'] == '2023-11-14T22:13:20.250Z'
  assert _value(m, 'fmnist_request_log_written_total') == 20


def test_sampling_rate(tmp_path):
  m = metrics_lib.Metrics()
  logger = request_log.RequestLogger(
      request_log.JsonlSink(str(tmp_path), 1 << 30, 3600), sample_rate=0.25,
      queue_size=1000, metrics=m, seed=3)
  logger.start()
  for _ in range(400):
    logger.log(_served(1))
  logger.close()
  written = _value(m, 'fmnist_request_log_written_total')
  assert 60 <= written <= 140


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
  m = metrics_lib.Metrics()
  gate = threading.Event()

  class SlowSink(request_log.JsonlSink):
    def write(self, rows):
      gate.wait(10)
      super().write(rows)

  logger = request_log.RequestLogger(SlowSink(str(tmp_path), 1 << 30, 3600),
                                     1.0, queue_size=5, metrics=m)
  logger.start()
  start = time.perf_counter()
  for _ in range(50):
    logger.log(_served(1))
  assert time.perf_counter() - start < 0.5  # the request path never waits
  gate.set()
  logger.close()
  dropped = _value(m, 'fmnist_request_log_dropped_total', reason='queue_full')
  written = _value(m, 'fmnist_request_log_written_total')
  assert dropped > 0 and dropped + written == 50


def test_bigquery_rows_have_vertex_logging_shape(tmp_path):
  with fake_servers.bigquery() as bq:
    m = metrics_lib.Metrics()
    sink = request_log.BigQuerySink('proj.logs.requests', 'fmnist-proxy',
                                    api_endpoint=bq.url)
    logger = request_log.RequestLogger(sink, 1.0, 100, m)
    logger.start()
    logger.log(_served(3))
    logger.close()
    assert len(bq.rows) == 1
    row = bq.rows[0]
    schema = json.load(open(cfg_lib.__file__.replace(
        'config.py', 'bigquery_schema.json')))
    assert set(row) == {f['name'] for f in schema}
    assert row['endpoint'] == 'fmnist-proxy'
    assert row['deployed_model_id'] == '4'
    assert row['logging_time'] == '2023-11-14T22:13:20.250Z'
    assert row['request_id'] == str(int('0123456789abcde', 16))
    assert len(row['request_payload']) == 3
    assert len(json.loads(row['request_payload'][0])['pixels']) == 784
    assert json.loads(row['response_payload'][0])['class_names'] == 'Dress'
    assert bq.requests[0]['path'].split('?')[0] == (
        '/bigquery/v2/projects/proj/datasets/logs/tables/requests/insertAll')
    assert _value(m, 'fmnist_request_log_written_total') == 3


def test_a_down_sink_never_fails_a_prediction(model_home, tmp_path, images):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    dead = f'http://127.0.0.1:{s.getsockname()[1]}'
  config = make_config(model_home, tmp_path, logging=cfg_lib.LogConfig(
      sink='bigquery', bigquery_table='proj.logs.requests'))
  m = metrics_lib.Metrics()
  sink = request_log.BigQuerySink('proj.logs.requests', 'x', api_endpoint=dead,
                                  retry_deadline_s=0.5)
  logger = request_log.RequestLogger(sink, 1.0, 100, m)
  app = app_lib.create_app(config, logger=logger, metrics=m)
  with AppClient(app) as c:
    for _ in range(3):
      start = time.perf_counter()
      r = c.post(PREDICT, json={'instances': images[:2].tolist()})
      assert r.status_code == 200
      assert time.perf_counter() - start < 0.5
  assert _value(m, 'fmnist_request_log_dropped_total', reason='sink_error') == 6
  assert _value(m, 'fmnist_request_log_written_total') == 0


def test_files_left_by_a_killed_server_are_finished_by_the_next(tmp_path):
  """A SIGKILLed server cannot rename its file; its rows must still count."""
  gone = subprocess.Popen([sys.executable, '-c', 'pass'])
  gone.wait()
  running = subprocess.Popen([sys.executable, '-c',
                              'import time; time.sleep(60)'])
  row = json.dumps({'class_id': 3}) + '\n'
  killed = tmp_path / f'requests-20261204T010203-{gone.pid}-1.jsonl.inprogress'
  killed.write_text(row * 2 + '{"class_id": 3, "pix')  # torn last line
  # A restarted container often has the same pid as the server before it.
  earlier_me = tmp_path / f'requests-20261204T010203-{os.getpid()}-7.jsonl.inprogress'
  earlier_me.write_text(row)
  live = tmp_path / f'requests-20261204T010203-{running.pid}-1.jsonl.inprogress'
  live.write_text(row)
  try:
    logger = request_log.RequestLogger(
        request_log.JsonlSink(str(tmp_path), 1 << 30, 3600), sample_rate=1.0,
        queue_size=10, metrics=metrics_lib.Metrics())
    logger.start()
    logger.log(_served(1))
    assert live.exists()  # still being written by a live server
    logger.close()
  finally:
    running.kill()
    running.wait()
  recovered = tmp_path / killed.name.replace('.inprogress', '')
  assert recovered.read_text() == row * 2
  assert (tmp_path / earlier_me.name.replace('.inprogress', '')).exists()
  assert not killed.exists() and not earlier_me.exists()
  # Every complete row is readable; ours is finished as usual.
  rows = [json.loads(l) for f in glob.glob(str(tmp_path / '*.jsonl'))
          for l in open(f)]
  assert len(rows) == 4
