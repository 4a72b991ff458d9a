"""Prometheus metrics, one registry per app (tests build many apps).

With several server processes (`--workers`), prometheus_client's multiprocess
mode is on (`PROMETHEUS_MULTIPROC_DIR`, set by `fmnist serve` before the
workers start): every process writes its values to files there and /metrics,
whichever process answers it, reports the sum over all of them.
"""

import contextlib
import glob
import os
import re

import prometheus_client as prom
from prometheus_client import multiprocess

MULTIPROC_ENV = 'PROMETHEUS_MULTIPROC_DIR'

_LATENCY_BUCKETS = (.0005, .001, .002, .003, .005, .0075, .01, .015, .025,
                    .05, .1, .25, .5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class InFlight:
  """Predict requests between arrival and model answer (a batching hint)."""

  def __init__(self, gauge: prom.Gauge):
    self._n = 0
    self._gauge = gauge

  def value(self) -> int:
    return self._n

  @contextlib.contextmanager
  def track(self):
    self._n += 1
    self._gauge.inc()
    try:
      yield
    finally:
      self._n -= 1
      self._gauge.dec()


class Metrics:
  """Request counts, latencies, batch sizes, errors by kind, log drops."""

  def __init__(self):
    self.registry = prom.CollectorRegistry()
    r = self.registry
    self.requests = prom.Counter(
        'fmnist_requests', 'HTTP requests by route and status code',
        ['route', 'code'], registry=r)
    self.latency = prom.Histogram(
        'fmnist_request_latency_seconds', 'Request latency by route',
        ['route'], buckets=_LATENCY_BUCKETS, registry=r)
    self.errors = prom.Counter(
        'fmnist_errors', 'Failed requests by error kind', ['kind'],
        registry=r)
    self.instances = prom.Counter(
        'fmnist_instances', 'Images predicted, by class', ['class_name'],
        registry=r)
    self.batch_size = prom.Histogram(
        'fmnist_batch_size', 'Images per model call (local backend)',
        buckets=_BATCH_BUCKETS, registry=r)
    self.in_flight = InFlight(prom.Gauge(
        'fmnist_predict_in_flight', 'Predict requests awaiting the model',
        registry=r, multiprocess_mode='livesum'))
    # One series per worker process (`pid` label) with several workers, so a
    # process still on an old version shows.
    self.model_version = prom.Gauge(
        'fmnist_model_version', 'Model version being served (local)',
        registry=r, multiprocess_mode='liveall')
    self.model_loads = prom.Counter(
        'fmnist_model_loads', 'Model version loads by result', ['result'],
        registry=r)
    self.log_written = prom.Counter(
        'fmnist_request_log_written', 'Instances written to the request log',
        registry=r)
    self.log_dropped = prom.Counter(
        'fmnist_request_log_dropped',
        'Instances the request log dropped, by reason', ['reason'], registry=r)

  def exposition(self) -> bytes:
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
      return prom.generate_latest(self.registry)
    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return prom.generate_latest(registry)


def forget_dead_workers() -> None:
  """Drops the live gauges of worker processes that are gone.

  uvicorn restarts a worker that dies; its in-flight count and model version
  would otherwise be reported forever. Counters and histograms are kept: they
  count what that worker served.
  """
  directory = os.environ.get(MULTIPROC_ENV)
  if not directory:
    return
  for path in glob.glob(os.path.join(directory, 'gauge_live*_*.db')):
    pid = int(re.search(r'_(\d+)\.db$', path).group(1))
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      multiprocess.mark_process_dead(pid, directory)
    except PermissionError:  # alive, another user's
      pass
