"""Raw in-process SavedModel predict vs. the proxy over HTTP, side by side.

  python benchmarks/serving_latency.py [--serving-dir DIR] [--requests 400]
      [--workers 1,2]

Without --serving-dir it exports an untrained model with the default
architecture and test-time augmentation (same compute as a trained one;
`--model-param` changes them) using the test fixture's real export path.
Until 2026-12-05 that export left TTA out, so figures of earlier dates are
of one network call per image, not the served two. The proxy runs as
`fmnist serve` in its own process on
127.0.0.1 (JSONL request logging on, as by default), once per --workers
value. The load comes from wrk (Debian's `wrk`) when it is installed: a C
client that costs the server's two cores ~3 % where a Python client costs
~30 %; otherwise from a minimal keep-alive asyncio HTTP/1.1 client. Bounded
request counts (asyncio) or durations (wrk); loopback only.
"""

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from models import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _percentiles(latencies_s):
  ms = np.asarray(latencies_s) * 1000
  return [float(np.percentile(ms, q)) for q in (50, 95, 99)]


def _build_model(out_dir: str, params: dict) -> str:
  sys.path.insert(0, os.path.join(REPO, 'tests'))  # its transform_builder
  spec = importlib.util.spec_from_file_location(
      'model_fixture', os.path.join(REPO, 'tests', 'serving',
                                    'model_fixture.py'))
  fixture = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(fixture)
  from models.config import ModelConfig
  serving_dir = os.path.join(out_dir, 'serving_model')
  cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **params})
  fixture.build_saved_model(os.path.join(serving_dir, '1'), cfg=cfg,
                            with_tta=True)
  return serving_dir


def bench_raw(serving_dir: str, n: int, batch: int):
  import tensorflow as tf
  from pipeline import pusher
  version = pusher.pushed_versions(serving_dir)[-1]
  fn = tf.saved_model.load(os.path.join(serving_dir, str(version))
                           ).signatures['serving_default']
  rng = np.random.default_rng(0)
  rows = []
  for size, calls in ((1, n), (batch, max(20, n // 8))):
    x = rng.integers(0, 256, (size, 784)).astype(np.float32)
    for _ in range(10):
      fn(pixels=tf.constant(x))
    lat = []
    start = time.perf_counter()
    for _ in range(calls):
      t = time.perf_counter()
      fn(pixels=tf.constant(x))['probabilities'].numpy()
      lat.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    rows.append((f'raw SavedModel, batch {size}', *_percentiles(lat),
                 calls * size / elapsed))
  return rows


def _request(port: int, payload: bytes) -> bytes:
  return (f'POST /v1/models/fmnist:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}'
          f'\r\nContent-Type: application/json\r\nContent-Length: '
          f'{len(payload)}\r\n\r\n').encode() + payload


async def _worker(port, request, count, latencies):
  reader, writer = await asyncio.open_connection('127.0.0.1', port)
  try:
    for _ in range(count):
      t = time.perf_counter()
      writer.write(request)
      head = await reader.readuntil(b'\r\n\r\n')
      status = head.split(b' ', 2)[1]
      length = int(head.lower().split(b'content-length:')[1].split(b'\r\n')[0])
      await reader.readexactly(length)
      if status != b'200':
        raise RuntimeError(f'proxy answered {status!r}')
      latencies.append(time.perf_counter() - t)
  finally:
    writer.close()


async def _load(port, request, concurrency, total):
  latencies = []
  per = max(1, total // concurrency)
  start = time.perf_counter()
  await asyncio.gather(*(_worker(port, request, per, latencies)
                         for _ in range(concurrency)))
  return latencies, time.perf_counter() - start


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\\n", summary.requests,
      summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _wrk_load(port, payload_path, concurrency, seconds):
  """(p50, p95, p99 ms, requests/s) measured by wrk; raises on any error."""
  script = payload_path + '.lua'
  with open(script, 'w') as f:
    f.write(_WRK_SCRIPT)
  out = subprocess.run(
      ['wrk', '-t1', f'-c{concurrency}', f'-d{seconds}s', '-s', script,
       f'http://127.0.0.1:{port}/v1/models/fmnist:predict'],
      env=dict(os.environ, BENCH_BODY=payload_path), capture_output=True,
      text=True, check=True).stdout
  line = [l for l in out.splitlines() if l.startswith('WRK ')][0]
  requests, duration_us, errors, p50, p95, p99 = map(int, line.split()[1:])
  if errors:
    raise RuntimeError(f'{errors} failed requests under wrk:\n{out}')
  return p50 / 1000, p95 / 1000, p99 / 1000, requests / (duration_us / 1e6)


def _wait_ready(port: int, workers: int, proc) -> None:
  """Until every worker has a model (one version series per worker)."""
  deadline = time.time() + 180
  while True:
    try:
      with socket.create_connection(('127.0.0.1', port), timeout=1) as c:
        c.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
        text = b''
        while b'fmnist_request_log' not in text:
          chunk = c.recv(65536)
          if not chunk:
            break
          text += chunk
      if text.count(b'\nfmnist_model_version') >= workers:
        return
    except OSError:
      pass
    if proc.poll() is not None or time.time() > deadline:
      raise RuntimeError(proc.stderr.read().decode()[-2000:])
    time.sleep(0.3)


def bench_proxy(serving_dir: str, n: int, log_dir: str, workers: int,
                use_wrk: bool):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.Popen(
      [sys.executable, '-m', 'fmnist.cli', 'serve', '--serving-dir',
       serving_dir, '--port', str(port), '--log-dir', log_dir,
       '--workers', str(workers)],
      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  try:
    _wait_ready(port, workers, proc)
    rng = np.random.default_rng(1)
    payload = json.dumps({'instances': [
        rng.integers(0, 256, 784).tolist()]}).encode()
    payload_path = os.path.join(os.path.dirname(log_dir), 'payload.json')
    with open(payload_path, 'wb') as f:
      f.write(payload)
    request = _request(port, payload)
    rows = []
    asyncio.run(_load(port, request, 32, 320))  # warm-up, every worker
    name = f'{workers} worker' + ('s' if workers > 1 else '')
    for concurrency, total in ((1, n), (8, 2 * n), (32, 4 * n)):
      if use_wrk:  # about as long as the asyncio run would take
        figures = _wrk_load(port, payload_path, concurrency,
                            max(3, total // 1000 * 2))
      else:
        lat, elapsed = asyncio.run(_load(port, request, concurrency, total))
        figures = (*_percentiles(lat), len(lat) / elapsed)
      rows.append((f'proxy, {name}, concurrency {concurrency}', *figures))
    return rows
  finally:
    proc.terminate()
    proc.wait(60)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--serving-dir', default=None)
  p.add_argument('--requests', type=int, default=400,
                 help='requests at concurrency 1 (x2 at 8, x4 at 32)')
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--workers', default='1,2',
                 help='proxy server processes to measure, comma-separated')
  p.add_argument('--model-param', action='append', default=[],
                 help='KEY=JSON override of the default model without '
                      '--serving-dir, e.g. shift_tta=true')
  p.add_argument('--client', choices=('auto', 'wrk', 'asyncio'),
                 default='auto', help='load generator (auto: wrk if installed)')
  args = p.parse_args(argv)
  worker_counts = [int(w) for w in args.workers.split(',')]
  use_wrk = (args.client == 'wrk' or
             (args.client == 'auto' and shutil.which('wrk') is not None))
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # Raw predict runs in this process with the oneDNN setting `fmnist serve`
  # chooses (off unless TF_ENABLE_ONEDNN_OPTS says otherwise), so both sides
  # run the same kernels (TF's default, on with AVX-512, made the raw side
  # batch faster than any proxy could).
  runtime.prefer_onednn(False)
  with tempfile.TemporaryDirectory() as tmp:
    params = {k: json.loads(v) for k, v in
              (pair.split('=', 1) for pair in args.model_param)}
    serving_dir = args.serving_dir or _build_model(tmp, params)
    rows = bench_raw(serving_dir, args.requests, args.batch)
    for workers in worker_counts:
      rows += bench_proxy(serving_dir, args.requests,
                          os.path.join(tmp, f'logs-{workers}'), workers,
                          use_wrk)
  print(f'load generator: {"wrk" if use_wrk else "asyncio"}; '
        f'{os.cpu_count()} CPUs')
  print(f'{"":36} {"p50 ms":>8} {"p95 ms":>8} {"p99 ms":>8} {"images/s":>10}')
  for name, p50, p95, p99, rate in rows:
    print(f'{name:36} {p50:8.2f} {p95:8.2f} {p99:8.2f} {rate:10.0f}')
  raw1, raw_b = rows[0], rows[1]
  print()
  for i, workers in enumerate(worker_counts):
    c1, c32 = rows[2 + 3 * i], rows[4 + 3 * i]
    print(f'{workers} worker(s): proxy c=1 p50 - raw batch-1 p50: '
          f'{c1[1] - raw1[1]:+.2f} ms (target <= 2 ms); c=32 throughput / '
          f'raw batched: {c32[4] / raw_b[4]:.2f} (target >= 0.5)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
