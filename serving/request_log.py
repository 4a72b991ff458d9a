"""What the proxy served, for monitoring: sampled, queued, written off-path.

The request path only samples and enqueues references (no JSON, no I/O). A
background thread turns them into rows and hands them to a sink. A full queue
or a failing sink drops rows and counts them in `fmnist_request_log_dropped`;
a prediction never waits for, or fails because of, logging. `close()` drains
the queue, so a clean shutdown loses nothing.

Sinks:
- `JsonlSink`: one JSON line per served image in
  `requests-<utc>-<pid>-<n>.jsonl`; the file being written ends in
  `.inprogress` and is renamed when it rotates (by size or age) or the server
  stops, so a reader of `*.jsonl` only sees complete files (`fmnist
  monitor` also reads the live file, up to its last complete line). A server
  killed without a chance to rename (SIGKILL, out of memory) leaves its file
  `.inprogress`; the next server on the directory finishes it
  (`recover_abandoned`: keeps complete lines, cuts a torn last one).
- `BigQuerySink`: one row per request in the schema Vertex AI's
  request-response logging uses (`bigquery_schema.json`).
"""

import abc
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import queue
import random
import re
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from serving import bigquery_client
from serving import jsonio

_log = logging.getLogger(__name__)
_STOP = object()
_MAX_BATCH = 256  # requests per sink write


@dataclasses.dataclass(frozen=True)
class Served:
  """One answered request, as the request path hands it over."""
  timestamp: float
  request_id: str
  route: str
  model_name: str
  model_version: str
  pixels: np.ndarray          # float32 [N, 784]
  probabilities: np.ndarray   # float32 [N, 10]
  class_ids: np.ndarray       # int [N]
  class_names: List[str]

  def __len__(self) -> int:
    return len(self.class_ids)


def _iso(ts: float) -> str:
  return datetime.datetime.fromtimestamp(
      ts, datetime.timezone.utc).isoformat(timespec='milliseconds').replace(
          '+00:00', 'Z')


def numeric_request_id(request_id: str) -> str:
  """A NUMERIC id for BigQuery (Vertex's column type) from our string id."""
  try:
    return str(int(request_id[:15], 16))
  except ValueError:
    return str(int(hashlib.sha256(request_id.encode()).hexdigest()[:15], 16))


def instance_records(s: Served) -> List[Dict]:
  """One record per image: what it looked like to the model, and the answer."""
  pixels = np.rint(s.pixels).astype(np.int64).tolist()  # what the model rounds to
  ts = _iso(s.timestamp)
  return [{
      'timestamp': ts, 'request_id': s.request_id, 'instance': i,
      'route': s.route, 'model_name': s.model_name,
      'model_version': s.model_version, 'pixels': pixels[i],
      'class_id': int(s.class_ids[i]), 'class_name': s.class_names[i],
      'probabilities': s.probabilities[i].tolist(),
  } for i in range(len(s))]


class Sink(abc.ABC):
  """Where rows go. `write` may raise; the logger counts it as a drop."""

  @abc.abstractmethod
  def rows(self, served: Served) -> List[Dict]:
    """Rows for one request (JSON-ready)."""

  @abc.abstractmethod
  def write(self, rows: List[Dict]) -> None:
    """Persists rows; raises on failure."""

  def close(self) -> None:
    """Flushes and releases the sink."""


_INPROGRESS = re.compile(r'requests-.*-(\d+)-\d+\.jsonl\.inprogress$')
_OPENED_HERE = set()  # in-progress files this process is writing


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def recover_abandoned(directory: str) -> int:
  """Finishes in-progress files whose writer is gone; returns rows kept.

  The writer's pid is in the name. A file is abandoned when that process is
  not running, or when it is this process but not a file it opened (a
  restarted container often gets the same pid). Complete lines are kept and
  a torn last line is cut, so the file reads like any rotated one.
  """
  rows = 0
  if not os.path.isdir(directory):
    return rows
  for name in sorted(os.listdir(directory)):
    match = _INPROGRESS.match(name)
    path = os.path.join(directory, name)
    if not match or path in _OPENED_HERE:
      continue
    pid = int(match.group(1))
    if pid != os.getpid() and _alive(pid):
      continue
    with open(path, 'rb+') as f:
      data = f.read()
      keep = data.rfind(b'\n') + 1
      f.truncate(keep)
    kept = data[:keep].count(b'\n')
    rows += kept
    os.replace(path, path[:-len('.inprogress')])
    _log.warning('request log: finished %s left by a stopped server '
                 '(%d rows kept)', name, kept)
  return rows


class JsonlSink(Sink):
  """Rotating JSONL files in a local directory."""

  def __init__(self, directory: str, max_bytes: int, max_seconds: float):
    recover_abandoned(directory)
    self._dir = directory
    self._max_bytes = max_bytes
    self._max_seconds = max_seconds
    self._file = None
    self._path = ''
    self._opened_at = 0.0
    self._seq = 0

  def rows(self, served: Served) -> List[Dict]:
    return instance_records(served)

  def _open(self) -> None:
    os.makedirs(self._dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y%m%dT%H%M%S')
    self._seq += 1
    self._path = os.path.join(
        self._dir, f'requests-{stamp}-{os.getpid()}-{self._seq}.jsonl')
    self._file = open(self._path + '.inprogress', 'a', encoding='utf-8')
    _OPENED_HERE.add(self._path + '.inprogress')
    self._opened_at = time.monotonic()

  def _finish(self) -> None:
    if self._file is not None:
      self._file.close()
      os.replace(self._path + '.inprogress', self._path)
      _OPENED_HERE.discard(self._path + '.inprogress')
      self._file = None

  def write(self, rows: List[Dict]) -> None:
    for row in rows:
      if self._file is None:
        self._open()
      self._file.write(jsonio.dumps(row, 'pixels') + '\n')
      if (self._file.tell() >= self._max_bytes or
          time.monotonic() - self._opened_at >= self._max_seconds):
        self._finish()
    if self._file is not None:
      self._file.flush()

  def close(self) -> None:
    self._finish()


class BigQuerySink(Sink):
  """Streaming inserts into a table shaped like Vertex request-response logs."""

  def __init__(self, table: str, endpoint_label: str,
               api_endpoint: Optional[str] = None,
               retry_deadline_s: float = 10.0, client=None):
    self._table = table
    self._label = endpoint_label
    self._api_endpoint = api_endpoint
    self._deadline = retry_deadline_s
    self._client = client

  def _get_client(self):
    if self._client is None:
      self._client = bigquery_client.create(self._table.split('.')[0],
                                     self._api_endpoint)
    return self._client

  def rows(self, served: Served) -> List[Dict]:
    pixels = np.rint(served.pixels).astype(np.int64).tolist()
    return [{
        'endpoint': self._label,
        'deployed_model_id': served.model_version,
        'logging_time': _iso(served.timestamp),
        'request_id': numeric_request_id(served.request_id),
        'request_payload': [json.dumps({'pixels': p}, separators=(',', ':'))
                            for p in pixels],
        'response_payload': [json.dumps({
            'probabilities': served.probabilities[i].tolist(),
            'class_ids': int(served.class_ids[i]),
            'class_names': served.class_names[i],
        }, separators=(',', ':')) for i in range(len(served))],
    }]

  def write(self, rows: List[Dict]) -> None:
    from google.cloud import bigquery  # pylint: disable=g-import-not-at-top
    errors = self._get_client().insert_rows_json(
        self._table, rows,
        retry=bigquery.DEFAULT_RETRY.with_deadline(self._deadline),
        timeout=self._deadline)
    if errors:
      raise RuntimeError(f'BigQuery rejected rows: {errors[:3]}')


class RequestLogger:
  """Samples served requests and writes them to a sink on its own thread.

  After a write that did not fill a batch the thread lingers `linger_s`
  before looking again, so under load one wake-up, one GIL hand-over and one
  flush serve many requests instead of one each; rows reach the sink at most
  that much later. `close()` cuts the linger short.
  """

  def __init__(self, sink: Optional[Sink], sample_rate: float, queue_size: int,
               metrics, seed: Optional[int] = None, linger_s: float = 0.02):
    self._sink = sink
    self._rate = sample_rate if sink is not None else 0.0
    self._metrics = metrics
    self._queue: 'queue.Queue' = queue.Queue(maxsize=queue_size)
    self._random = random.Random(seed)
    self._thread: Optional[threading.Thread] = None
    self._linger_s = linger_s
    self._closing = threading.Event()

  def start(self) -> None:
    if self._sink is not None:
      self._thread = threading.Thread(target=self._run, name='request-log',
                                      daemon=True)
      self._thread.start()

  def log(self, served: Served) -> None:
    """Called on the request path: never blocks, never raises."""
    if self._rate <= 0 or (self._rate < 1 and
                           self._random.random() >= self._rate):
      return
    try:
      self._queue.put_nowait(served)
    except queue.Full:
      self._metrics.log_dropped.labels(reason='queue_full').inc(len(served))

  def _write(self, batch: List[Served]) -> None:
    n = sum(len(s) for s in batch)
    try:
      rows = [r for s in batch for r in self._sink.rows(s)]
      self._sink.write(rows)
    except Exception as e:  # pylint: disable=broad-except
      _log.warning('request log sink failed, dropped %d instances: %s', n, e)
      self._metrics.log_dropped.labels(reason='sink_error').inc(n)
    else:
      self._metrics.log_written.inc(n)

  def _run(self) -> None:
    stopping = False
    while not stopping:
      batch = [self._queue.get()]
      while len(batch) < _MAX_BATCH:
        try:
          batch.append(self._queue.get_nowait())
        except queue.Empty:
          break
      if _STOP in batch:
        stopping = True
        batch = [b for b in batch if b is not _STOP]
        while True:  # drain what was queued before the stop
          try:
            item = self._queue.get_nowait()
          except queue.Empty:
            break
          if item is not _STOP:
            batch.append(item)
      if batch:
        self._write(batch)
      if not stopping and len(batch) < _MAX_BATCH:
        self._closing.wait(self._linger_s)
    try:
      self._sink.close()
    except Exception as e:  # pylint: disable=broad-except
      _log.warning('closing the request log sink failed: %s', e)

  def close(self, timeout: float = 30.0) -> None:
    """Writes everything queued so far, then stops the thread."""
    if self._thread is None:
      return
    self._closing.set()
    self._queue.put(_STOP)
    self._thread.join(timeout)
    if self._thread.is_alive():
      _log.warning('request log did not drain within %.0fs', timeout)
    self._thread = None


def create(log_config, metrics) -> RequestLogger:
  """The logger `log_config` describes (sink 'none' logs nothing)."""
  if log_config.sink == 'jsonl':
    sink = JsonlSink(log_config.directory, log_config.max_file_bytes,
                     log_config.max_file_seconds)
  elif log_config.sink == 'bigquery':
    sink = BigQuerySink(log_config.bigquery_table, log_config.endpoint_label,
                        log_config.bigquery_api_endpoint)
  else:
    sink = None
  return RequestLogger(sink, log_config.sample_rate, log_config.queue_size,
                       metrics)
