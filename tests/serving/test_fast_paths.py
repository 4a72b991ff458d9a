"""The throughput shortcuts give exactly what the plain code gave.

orjson parsing, spliced request-log lines and the lingering log writer exist
for speed only; these tests pin that values, error messages and file bytes
are unchanged.
"""

import glob
import json
import time

import numpy as np
import pytest

from serving import jsonio
from serving import metrics as metrics_lib
from serving import request_log


@pytest.mark.parametrize('body', [
    b'{"instances": [[0, 1.5, 255, -0.0, 1e-7, 12345678901234567]]}',
    b'{"instances": [[NaN, Infinity, -Infinity]]}',   # json-only literals
    b'[123456789012345678901234567890, 18446744073709551616]',  # > 64 bits
    b'[1e400]',                                        # inf, as json reads it
    b'"\\ud800"',                                      # a lone surrogate
    '{"pixels": [1, 2]}'.encode('utf-16'),             # json detects UTF-16
    b'\xef\xbb\xbf{"a": 1}',                           # UTF-8 BOM
    b'{"a": 1, "a": 2}',
])
def test_loads_matches_json(body):
  assert repr(jsonio.loads(body)) == repr(json.loads(body))


@pytest.mark.parametrize('body', [
    b'{"instances": [1,', b'', b'{"a" 1}', b'[1, 2]]', b'\xff\xfe\x00',
    b'{"instances": [01]}'])
def test_loads_errors_match_json(body):
  with pytest.raises(ValueError) as expected:
    json.loads(body)
  with pytest.raises(ValueError) as got:
    jsonio.loads(body)
  assert type(got.value) is type(expected.value)  # pylint: disable=unidiomatic-typecheck
  assert str(got.value) == str(expected.value)


@pytest.mark.parametrize('row', [
    {'a': 'é', 'pixels': [0, 7, 255], 'p': [1e-05, 0.1, 3.5e-07], 'z': None},
    {'pixels': [1, 2]}, {'x': 'y', 'pixels': []}, {'pixels': [[1, -2], [3]]},
    {'pixels': [1.0, 2]}, {'pixels': [True, 1]}, {'pixels': [2 ** 70]},
    {'pixels': 'abc'}, {'pixels': [None]}, {'a': 1},
    {'pixels': [1], 'z': float('nan')},
])
def test_dumps_is_byte_identical(row):
  assert jsonio.dumps(row, 'pixels') == json.dumps(row, separators=(',', ':'))
  assert jsonio.dumps_compact(row) == json.dumps(row, separators=(',', ':'))


def _served(n):
  rng = np.random.default_rng(1)
  probs = rng.dirichlet(np.ones(10) * 0.05, n).astype(np.float32)  # tiny ones
  return request_log.Served(
      timestamp=1_700_000_000.25, request_id='r1', route='tfserving',
      model_name='fmnist', model_version='3',
      pixels=rng.uniform(0, 255, (n, 784)).astype(np.float32),
      probabilities=probs, class_ids=probs.argmax(1),
      class_names=['Bag'] * n)


def test_jsonl_lines_are_json_dumps_of_the_records(tmp_path):
  served = _served(4)
  logger = request_log.RequestLogger(
      request_log.JsonlSink(str(tmp_path), 1 << 30, 3600), 1.0, 100,
      metrics_lib.Metrics())
  logger.start()
  logger.log(served)
  logger.close()
  [path] = glob.glob(str(tmp_path / '*.jsonl'))
  expected = ''.join(json.dumps(r, separators=(',', ':')) + '\n'
                     for r in request_log.instance_records(served))
  assert open(path, encoding='utf-8').read() == expected


def test_lingering_writer_writes_soon_and_closes_at_once(tmp_path):
  m = metrics_lib.Metrics()
  logger = request_log.RequestLogger(
      request_log.JsonlSink(str(tmp_path), 1 << 30, 3600), 1.0, 100, m,
      linger_s=10.0)
  logger.start()
  logger.log(_served(1))
  deadline = time.monotonic() + 5
  while (m.registry.get_sample_value('fmnist_request_log_written_total') or
         0) < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
  logger.log(_served(2))  # queued while the writer lingers
  start = time.monotonic()
  logger.close()
  assert time.monotonic() - start < 2  # close cuts the 10 s linger short
  assert m.registry.get_sample_value('fmnist_request_log_written_total') == 3
