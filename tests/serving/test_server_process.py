"""`fmnist serve` as a real process on a real socket (uvicorn on 127.0.0.1)."""

import concurrent.futures
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from serving import imaging

from model_fixture import push  # pylint: disable=g-bad-import-order
import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order

FMNIST = [sys.executable, '-m', 'fmnist.cli']
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))



def test_serve_on_a_socket_batches_and_flushes_on_shutdown(model_home,
                                                           tmp_path, images):
  port = loopback.free_port()
  log_dir = tmp_path / 'logs'
  proc = subprocess.Popen(
      FMNIST + ['serve', '--home', model_home['home'], '--port', str(port),
                '--log-dir', str(log_dir)],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  url = f'http://127.0.0.1:{port}'
  try:
    deadline = time.time() + 90
    while time.time() < deadline:
      try:
        if httpx.get(f'{url}/readyz', timeout=1).status_code == 200:
          break
      except httpx.TransportError:
        pass
      assert proc.poll() is None, proc.stderr.read()
      time.sleep(0.3)
    else:
      raise AssertionError('server did not become ready')

    png = imaging.encode_png(images[2])
    r = httpx.post(f'{url}/predict', files={'file': ('s.png', png,
                                                     'image/png')})
    assert r.status_code == 200 and r.json()['model_version'] == '1'
    body = {'instances': [images[0].tolist()]}
    with httpx.Client(base_url=url) as client, \
        concurrent.futures.ThreadPoolExecutor(16) as pool:
      codes = list(pool.map(
          lambda _: client.post('/v1/models/fmnist:predict', json=body
                                ).status_code, range(96)))
    assert codes == [200] * 96
    metrics = httpx.get(f'{url}/metrics').text
    count = float([l for l in metrics.splitlines()
                   if l.startswith('fmnist_batch_size_count')][0].split()[-1])
    # Fewer model calls than images: concurrent requests were batched.
    assert count < 97
  finally:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
  # uvicorn shuts down gracefully, then re-raises the signal it caught.
  assert proc.returncode in (0, -signal.SIGTERM), err
  assert 'Traceback' not in err, err
  assert f'http://127.0.0.1:{port}' in out
  records = [json.loads(l) for f in glob.glob(str(log_dir / '*.jsonl'))
             for l in open(f)]
  assert len(records) == 97  # every instance, flushed on SIGTERM
  assert not glob.glob(str(log_dir / '*.inprogress'))


def _model_versions(url: str) -> dict:
  """{worker pid: version} from the aggregated fmnist_model_version gauge."""
  lines = [l for l in httpx.get(f'{url}/metrics').text.splitlines()
           if l.startswith('fmnist_model_version{')]
  return {l.split('pid="')[1].split('"')[0]: l.split()[-1] for l in lines}


def _wait(predicate, what: str, proc, timeout: float = 120) -> None:
  deadline = time.time() + timeout
  while time.time() < deadline:
    try:
      if predicate():
        return
    except httpx.TransportError:
      pass
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.3)
  raise AssertionError(f'timed out waiting for {what}')


def test_two_workers_share_port_metrics_logs_and_new_versions(
    model_home, second_version, tmp_path, images):
  serving_dir = tmp_path / 'serving_model'
  push(os.path.join(model_home['serving_dir'], '1'), str(serving_dir), 1)
  port = loopback.free_port()
  log_dir, tmp = tmp_path / 'logs', tmp_path / 'tmp'
  tmp.mkdir()
  proc = subprocess.Popen(
      FMNIST + ['serve', '--serving-dir', str(serving_dir), '--port',
                str(port), '--log-dir', str(log_dir), '--workers', '2',
                '--poll-seconds', '0.3'],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, TMPDIR=str(tmp)))
  url = f'http://127.0.0.1:{port}'
  body = {'instances': [images[0].tolist()]}
  try:
    # Whichever process answers /metrics reports every worker's series.
    _wait(lambda: list(_model_versions(url).values()) == ['1.0', '1.0'],
          'two workers serving version 1', proc)
    pids = set(_model_versions(url))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      codes = list(pool.map(lambda _: httpx.post(
          f'{url}/v1/models/fmnist:predict', json=body).status_code,
                            range(96)))
    assert codes == [200] * 96
    requests = [l for l in httpx.get(f'{url}/metrics').text.splitlines()
                if l.startswith('fmnist_requests_total{') and ':predict' in l]
    assert sum(float(l.split()[-1]) for l in requests) == 96

    # Each worker picks up a new push on its own; then only v2 answers.
    push(second_version, str(serving_dir), 2)
    _wait(lambda: list(_model_versions(url).values()) == ['2.0', '2.0'],
          'both workers on version 2', proc)
    versions = {httpx.post(f'{url}/v1/models/fmnist:predict', json=body
                           ).headers['x-model-version'] for _ in range(8)}
    assert versions == {'2'}
  finally:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err
  assert 'Traceback' not in err, err
  assert 'with 2 worker processes' in out
  files = glob.glob(str(log_dir / '*.jsonl'))
  # Every instance, flushed by each worker on SIGTERM, named by its pid.
  assert sum(1 for f in files for _ in open(f)) == 96 + 8
  assert {os.path.basename(f).split('-')[2] for f in files} <= pids
  assert not glob.glob(str(log_dir / '*.inprogress'))
  assert not os.listdir(tmp)  # the shared metrics directory is gone


def _fmnist(args, capsys):
  """Runs the real `fmnist` CLI in-process (a subprocess per case is slow)."""
  from fmnist import cli
  try:
    code = cli.main(args)
  except SystemExit as e:  # argparse's --help
    code = e.code
  out = capsys.readouterr()
  return code, out.out, out.err


def test_serve_usage_errors_are_one_line_exit_2(tmp_path, capsys):
  code, _, err = _fmnist(['serve', '--home', str(tmp_path)], capsys)
  assert code == 2
  assert err.startswith('error: no pushed model under') and err.count('\n') == 1
  code, _, err = _fmnist(['serve', '--home', str(tmp_path), '--backend',
                          'vertex'], capsys)
  assert code == 2 and '--vertex-endpoint' in err
  code, _, err = _fmnist(['serve', '--home', str(tmp_path),
                          '--log-sample-rate', '2'], capsys)
  assert code == 2 and 'sample rate' in err
  code, _, err = _fmnist(['serve', '--home', str(tmp_path), '--workers', '0'],
                         capsys)
  assert code == 2 and 'workers must be between 1 and' in err


def test_serve_port_in_use(model_home, capsys):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    s.listen()
    code, _, err = _fmnist(['serve', '--home', model_home['home'], '--port',
                            str(s.getsockname()[1])], capsys)
  assert code == 2 and 'pass another --port' in err


@pytest.mark.parametrize('port', ['65536', '-1'])
def test_serve_port_out_of_range(model_home, capsys, port):
  code, _, err = _fmnist(['serve', '--home', model_home['home'], '--port',
                          port], capsys)
  assert code == 2
  assert err == f'error: --port {port}: expected a TCP port, 0 to 65535\n'


def test_serve_help_lists_the_flags(capsys):
  code, out, _ = _fmnist(['serve', '--help'], capsys)
  assert code == 0
  for flag in ('--backend', '--home', '--serving-dir', '--host', '--port',
               '--max-batch-size', '--batch-wait-ms', '--log-sink',
               '--log-sample-rate', '--token', '--max-body-bytes',
               '--max-instances', '--tfserving-url', '--vertex-endpoint',
               '--workers'):
    assert flag in out, flag
