"""Prometheus metrics, one registry per app (tests build many apps)."""

import contextlib

import prometheus_client as prom

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
        registry=r))
    self.model_version = prom.Gauge(
        'fmnist_model_version', 'Model version being served (local)',
        registry=r)
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
    return prom.generate_latest(self.registry)
