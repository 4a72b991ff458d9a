"""Soak and crash benchmark of the proxy: load, bad input, slow clients, kills.

  .venv/bin/python benchmarks/soak.py [--minutes 3] [--concurrency 64]
      [--kills 3] [--serving-dir DIR]

Soak: `fmnist serve` runs in its own process on 127.0.0.1 with JSONL request
logging at sample rate 1.0. For --minutes, --concurrency keep-alive clients
send a mix of valid requests (TF Serving JSON, a 4-image batch, Vertex JSON,
PNG upload) and every bad input issue 13 lists (JSON nested 100,000 deep,
multipart with many fields, unknown Vertex fields, malformed JSON, wrong
shapes, non-images, oversized bodies, unknown routes), while a few slow
clients dribble their requests a few bytes at a time and read answers late.
Reported: requests by kind and status, p50/p99 of the valid ones, the 5xx
count (must be 0), the server's memory after warm-up and at the end (bound:
growth <= 64 MiB), and request-log rows written vs. images served (equal at
sample rate 1.0) after a SIGTERM.

Crash: --kills times, a fresh server under valid load is killed with SIGKILL;
compared are the images whose 200 the clients had received and the rows on
disk (complete lines in *.jsonl and *.jsonl.inprogress), i.e. what a SIGKILL
loses from the request log.

Without --serving-dir an untrained model of the default architecture is
exported (same compute as a trained one), as in serving_latency.py. The
client is asyncio on raw sockets in this process: it shares the 2 cores with
the server, so throughput here is a floor, not the proxy's capacity.
"""

import argparse
import asyncio
import glob
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil

import hardware  # benchmarks/hardware.py
import serving_latency  # benchmarks/serving_latency.py
from serving import imaging
from serving import request_log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BODY_BYTES = 1 << 20
MEMORY_BOUND_MIB = 64


def _png(pixels) -> bytes:
  return imaging.encode_png(np.asarray(pixels, np.uint8).reshape(28, 28))


def _http(method, path, body=b'', content_type='application/json',
          extra_headers='') -> bytes:
  return (f'{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
          f'Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n'
          f'{extra_headers}\r\n').encode() + body


def _multipart(fields) -> tuple:
  boundary = 'soakboundary7f3a'
  parts = []
  for name, filename, data in fields:
    disposition = f'form-data; name="{name}"'
    if filename:
      disposition += f'; filename="{filename}"'
    parts.append(f'--{boundary}\r\nContent-Disposition: {disposition}\r\n'
                 f'Content-Type: application/octet-stream\r\n\r\n'.encode()
                 + data + b'\r\n')
  body = b''.join(parts) + f'--{boundary}--\r\n'.encode()
  return body, f'multipart/form-data; boundary={boundary}'


def request_mix(seed: int = 0):
  """[(kind, weight, images served if valid, raw HTTP request)]."""
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, 784).tolist()
  tfs = '/v1/models/fmnist:predict'
  vertex = '/v1/projects/p/locations/us-central1/endpoints/e:predict'
  png_body, png_type = _multipart([('file', 'x.png', _png(image))])
  many_body, many_type = _multipart(
      [(f'f{i}', None, b'x') for i in range(2000)])
  text_body, text_type = _multipart([('file', 'x.png', b'not a png')])
  nested = b'[' * 100_000 + b']' * 100_000
  j = lambda o: json.dumps(o).encode()
  return [
      ('valid tfserving', 30, 1, _http('POST', tfs, j({'instances': [image]}))),
      ('valid tfserving x4', 10, 4,
       _http('POST', tfs, j({'instances': [image] * 4}))),
      ('valid vertex', 15, 1, _http('POST', vertex, j({'instances': [image]}))),
      ('valid png upload', 15, 1, _http('POST', '/predict', png_body,
                                        png_type)),
      ('nested json 100k deep', 3, 0, _http('POST', tfs, b'{"instances":'
                                            + nested + b'}')),
      ('multipart 2000 fields', 3, 0, _http('POST', '/predict', many_body,
                                            many_type)),
      ('vertex unknown field', 3, 0, _http('POST', vertex, j(
          {'instances': [image], 'extra': 1}))),
      ('malformed json', 3, 0, _http('POST', tfs, b'{"instances": [1, 2')),
      ('wrong shape', 3, 0, _http('POST', tfs, j({'instances': [[1, 2, 3]]}))),
      ('non-image upload', 3, 0, _http('POST', '/predict', text_body,
                                       text_type)),
      ('oversized body', 2, 0, _http('POST', tfs, b' ' * (MAX_BODY_BYTES + 1))),
      ('unknown route', 2, 0, _http('GET', '/v2/nothing')),
      ('wrong method', 2, 0, _http('DELETE', tfs)),
  ]


async def _read_response(reader) -> tuple:
  """(status, whether the server closes the connection)."""
  head = await reader.readuntil(b'\r\n\r\n')
  status = int(head.split(b' ', 2)[1])
  lower = head.lower()
  length = 0
  if b'content-length:' in lower:
    length = int(lower.split(b'content-length:')[1].split(b'\r\n')[0])
  await reader.readexactly(length)
  return status, b'connection: close' in lower


class Tally:
  """Counts and latencies per request kind, and when each 200 arrived."""

  def __init__(self):
    self.status = {}        # (kind, status) -> count
    self.latency = []       # valid requests, seconds
    self.images_ok = []     # (arrival time, images) of every valid 200
    self.errors = 0         # transport errors (connection dropped)

  def add(self, kind, status, seconds, images):
    self.status[(kind, status)] = self.status.get((kind, status), 0) + 1
    if images:
      self.latency.append(seconds)
      if status == 200:
        self.images_ok.append((time.time(), images))


async def _client(port, mix, tally, stop_at, seed, slow=False):
  rnd = random.Random(seed)
  kinds = [m for m in mix if not slow or m[2]]  # slow clients send valid ones
  weights = [m[1] for m in kinds]
  reader = writer = None
  while time.time() < stop_at:
    kind, _, images, request = rnd.choices(kinds, weights)[0]
    try:
      if writer is None:
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
      start = time.perf_counter()
      if slow:  # dribble the request, then read the answer late
        for i in range(0, len(request), 64):
          writer.write(request[i:i + 64])
          await writer.drain()
          await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
      else:
        writer.write(request)
        await writer.drain()
      status, closed = await _read_response(reader)
      tally.add(kind, status, time.perf_counter() - start, images)
      if closed:
        writer.close()
        reader = writer = None
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
      tally.errors += 1
      if writer is not None:
        writer.close()
      reader = writer = None
  if writer is not None:
    writer.close()


async def _load(port, mix, seconds, concurrency, slow_clients, seed=0):
  tally = Tally()
  stop_at = time.time() + seconds
  await asyncio.gather(
      *(_client(port, mix, tally, stop_at, seed + i)
        for i in range(concurrency)),
      *(_client(port, mix, tally, stop_at, 10_000 + seed + i, slow=True)
        for i in range(slow_clients)))
  return tally


def _start_server(serving_dir, log_dir):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  proc = subprocess.Popen(
      [sys.executable, '-m', 'fmnist.cli', 'serve', '--serving-dir',
       serving_dir, '--port', str(port), '--log-dir', log_dir,
       '--log-sample-rate', '1.0', '--max-body-bytes', str(MAX_BODY_BYTES)],
      cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'),
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  serving_latency._wait_ready(port, 1, proc)  # pylint: disable=protected-access
  return proc, port


def _rss_mib(proc) -> float:
  p = psutil.Process(proc.pid)
  return sum(c.memory_info().rss for c in [p] + p.children(recursive=True)
             ) / 2**20


def _logged_rows(log_dir) -> int:
  """Complete lines on disk, in finished and in-progress files."""
  rows = 0
  for path in glob.glob(os.path.join(log_dir, '*.jsonl*')):
    with open(path, 'rb') as f:
      rows += f.read().count(b'\n')
  return rows


def soak(serving_dir, tmp, minutes, concurrency, slow_clients):
  log_dir = os.path.join(tmp, 'soak-logs')
  proc, port = _start_server(serving_dir, log_dir)
  mix = request_mix()
  try:
    asyncio.run(_load(port, mix, 10, concurrency, 0, seed=99))  # warm-up
    time.sleep(1)  # the warm-up's rows reach the file
    rss_start = _rss_mib(proc)
    rows_before = _logged_rows(log_dir)
    samples = []

    async def run():
      task = asyncio.ensure_future(_load(port, mix, minutes * 60, concurrency,
                                         slow_clients))
      while not task.done():
        samples.append(_rss_mib(proc))
        await asyncio.wait([task], timeout=10)
      return task.result()

    start = time.perf_counter()
    tally = asyncio.run(run())
    elapsed = time.perf_counter() - start
    rss_end = _rss_mib(proc)
  finally:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  rows = _logged_rows(log_dir) - rows_before
  served_images = sum(n for _, n in tally.images_ok)
  return {
      'seconds': elapsed,
      'concurrency': concurrency,
      'slow_clients': slow_clients,
      'by_kind': {f'{k} -> {s}': n for (k, s), n in sorted(
          tally.status.items())},
      'requests': sum(tally.status.values()),
      'transport_errors': tally.errors,
      '5xx': sum(n for (_, s), n in tally.status.items() if s >= 500),
      'valid_p50_ms': float(np.percentile(tally.latency, 50) * 1000),
      'valid_p99_ms': float(np.percentile(tally.latency, 99) * 1000),
      'rss_mib_after_warmup': rss_start,
      'rss_mib_max': max(samples + [rss_end]),
      'rss_mib_end': rss_end,
      'rss_mib_every_10s': samples,
      'images_served': served_images,
      'log_rows_written': rows,
      'inprogress_left': len(glob.glob(os.path.join(log_dir, '*.inprogress'))),
      'traceback_in_stderr': 'Traceback' in err.decode(errors='replace'),
  }


def kill_once(serving_dir, tmp, run, concurrency, seconds=8.0):
  log_dir = os.path.join(tmp, f'kill-logs-{run}')
  proc, port = _start_server(serving_dir, log_dir)
  valid = [m for m in request_mix() if m[2]]
  killed_at = []

  async def run_and_kill():
    task = asyncio.ensure_future(_load(port, valid, seconds + 5, concurrency,
                                       0, seed=run))
    await asyncio.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    killed_at.append(time.time())
    return await task

  tally = asyncio.run(run_and_kill())
  proc.wait(30)
  answered = sum(n for t, n in tally.images_ok if t <= killed_at[0])
  rows = _logged_rows(log_dir)
  # What the next server on the directory makes of the killed one's file.
  request_log.recover_abandoned(log_dir)
  visible = 0
  for path in glob.glob(os.path.join(log_dir, '*.jsonl')):
    with open(path, 'rb') as f:
      visible += f.read().count(b'\n')
  return {'images_answered_200': answered, 'rows_on_disk': rows,
          'lost': max(0, answered - rows),
          'rows_visible_to_monitor_after_restart': visible}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--minutes', type=float, default=3.0)
  p.add_argument('--concurrency', type=int, default=64)
  p.add_argument('--slow-clients', type=int, default=8)
  p.add_argument('--kills', type=int, default=3)
  p.add_argument('--serving-dir', default=None)
  p.add_argument('--output', default=os.path.join(REPO, 'benchmarks',
                                                  'results', 'soak.json'))
  args = p.parse_args(argv)
  print(f'hardware: {hardware.describe()}; load average before: {os.getloadavg()[0]:.1f}',
        flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    serving_dir = args.serving_dir or serving_latency._build_model(tmp)  # pylint: disable=protected-access
    print(f'soak: {args.minutes} min at concurrency {args.concurrency} '
          f'+ {args.slow_clients} slow clients ...', flush=True)
    result = soak(serving_dir, tmp, args.minutes, args.concurrency,
                  args.slow_clients)
    kills = []
    for run in range(args.kills):
      print(f'SIGKILL under load, run {run + 1}/{args.kills} ...', flush=True)
      kills.append(kill_once(serving_dir, tmp, run, args.concurrency))
  result['sigkill'] = kills
  result['hardware'] = hardware.describe()
  result['load_average_after'] = os.getloadavg()[0]

  print('\nrequests by kind -> status:')
  for key, n in result['by_kind'].items():
    print(f'  {key:40} {n:8d}')
  growth = result['rss_mib_end'] - result['rss_mib_after_warmup']
  print(f"\n{result['requests']} requests in {result['seconds']:.0f} s "
        f"({result['requests'] / result['seconds']:.0f}/s), "
        f"transport errors {result['transport_errors']}")
  print(f"5xx: {result['5xx']} (must be 0); load average now "
        f"{result['load_average_after']:.1f}")
  print(f"valid requests p50 {result['valid_p50_ms']:.1f} ms, "
        f"p99 {result['valid_p99_ms']:.1f} ms")
  print(f"server memory: {result['rss_mib_after_warmup']:.0f} MiB after "
        f"warm-up, max {result['rss_mib_max']:.0f}, end "
        f"{result['rss_mib_end']:.0f} (growth {growth:+.0f} MiB, bound "
        f"{MEMORY_BOUND_MIB})")
  print(f"request log: {result['log_rows_written']} rows for "
        f"{result['images_served']} images served (sample rate 1.0), "
        f"{result['inprogress_left']} .inprogress files left after SIGTERM")
  for i, k in enumerate(kills):
    print(f"SIGKILL {i + 1}: {k['images_answered_200']} images answered 200 "
          f"before the kill, {k['rows_on_disk']} rows on disk, lost "
          f"{k['lost']}; {k['rows_visible_to_monitor_after_restart']} rows "
          f"in finished files once the next server starts")
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, 'w') as f:
    json.dump(result, f, indent=1)
  ok = (result['5xx'] == 0 and growth <= MEMORY_BOUND_MIB and
        result['log_rows_written'] == result['images_served'] and
        not result['traceback_in_stderr'])
  print('\nPASS' if ok else '\nFAIL')
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
