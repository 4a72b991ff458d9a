"""Every knob of the proxy in one typed config; the CLI builds it from flags."""

import dataclasses
import json
import os
import re
from typing import Optional

from pipeline.errors import UserError

BACKENDS = ('local', 'tfserving', 'vertex')
LOG_SINKS = ('jsonl', 'bigquery', 'none')
# Vertex AI online prediction's request size limit.
DEFAULT_MAX_BODY_BYTES = 1_572_864  # 1.5 MiB
DEFAULT_MODEL_NAME = 'fmnist'
MAX_WORKERS = 32
CONFIG_ENV = 'FMNIST_SERVING_CONFIG'  # how worker processes get the config


class ServingConfigError(UserError, ValueError):
  """A config value the user can fix; the message says which and how."""


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
  """Server-side micro-batching of concurrent requests (local backend).

  A batch runs as soon as the model is free; it waits up to `max_wait_ms` for
  more requests only when other requests are already in flight, so a lone
  request never pays the wait.
  """
  enabled: bool = True
  max_batch_size: int = 64
  max_wait_ms: float = 2.0


@dataclasses.dataclass(frozen=True)
class LogConfig:
  """Where served instances go for monitoring, and how many of them."""
  sink: str = 'jsonl'
  directory: str = ''               # jsonl: defaults to <home>/request_logs
  sample_rate: float = 1.0
  max_file_bytes: int = 64 * 1024 * 1024
  max_file_seconds: float = 3600.0
  queue_size: int = 10_000
  bigquery_table: str = ''          # project.dataset.table
  bigquery_api_endpoint: Optional[str] = None  # tests point it at loopback
  endpoint_label: str = 'fmnist-proxy'  # `endpoint` column in BigQuery rows


@dataclasses.dataclass(frozen=True)
class ServingConfig:
  """What the proxy serves, from where, and with which limits."""
  backend: str = 'local'
  model_name: str = DEFAULT_MODEL_NAME
  serving_dir: str = ''             # local: the Pusher's base directory
  poll_seconds: float = 5.0         # local: how often to look for new versions
  tfserving_url: str = 'http://127.0.0.1:8501'  # REST, or grpc://HOST:8500
  vertex_endpoint: str = ''         # projects/P/locations/L/endpoints/E
  vertex_api_endpoint: Optional[str] = None  # e.g. http://127.0.0.1:9000
  backend_timeout_s: float = 10.0
  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
  max_instances: int = 64
  max_image_pixels: int = 4096 * 4096
  auth_token: Optional[str] = None
  deployed_model_id: str = 'local'  # reported on the Vertex-compatible route
  batching: BatchingConfig = BatchingConfig()
  logging: LogConfig = LogConfig()
  # Server processes sharing the port. Each one parses requests with its own
  # interpreter (and, on the local backend, holds its own copy of the model):
  # one process alternates between parsing and batching and leaves the CPUs
  # half idle under load. Match the container's CPUs.
  workers: int = 1

  def validate(self) -> 'ServingConfig':
    """Raises ServingConfigError for values no server could start with."""
    if self.backend not in BACKENDS:
      raise ServingConfigError(
          f'unknown backend {self.backend!r}; choose one of {", ".join(BACKENDS)}')
    if self.backend == 'local' and not self.serving_dir:
      raise ServingConfigError('the local backend needs a serving directory')
    if self.backend == 'tfserving' and not re.match(
        r'^(https?://[^/]+|grpc://[^/:]+:\d+)/?$', self.tfserving_url):
      raise ServingConfigError(
          f'--tfserving-url {self.tfserving_url!r} is not a TF Serving '
          'address: use http://HOST:8501 (REST) or grpc://HOST:8500 (gRPC)')
    if self.backend == 'vertex' and not self.vertex_endpoint:
      raise ServingConfigError(
          'the vertex backend needs --vertex-endpoint '
          'projects/PROJECT/locations/REGION/endpoints/ID')
    if self.logging.sink not in LOG_SINKS:
      raise ServingConfigError(
          f'unknown log sink {self.logging.sink!r}; choose one of '
          f'{", ".join(LOG_SINKS)}')
    if self.logging.sink == 'bigquery' and self.logging.bigquery_table.count(
        '.') != 2:
      raise ServingConfigError(
          'the bigquery log sink needs --bq-table project.dataset.table')
    if not 0.0 <= self.logging.sample_rate <= 1.0:
      raise ServingConfigError('the log sample rate must be in [0, 1]')
    if self.max_instances < 1 or self.max_body_bytes < 1024:
      raise ServingConfigError(
          'max instances must be >= 1 and the body limit >= 1024 bytes')
    if self.batching.max_batch_size < 1 or self.batching.max_wait_ms < 0:
      raise ServingConfigError(
          'batch size must be >= 1 and the batch wait >= 0 ms')
    if self.backend_timeout_s <= 0 or self.poll_seconds <= 0:
      raise ServingConfigError('timeouts and poll intervals must be positive')
    if not 1 <= self.workers <= MAX_WORKERS:
      raise ServingConfigError(
          f'workers must be between 1 and {MAX_WORKERS}, got {self.workers}; '
          'use about one per CPU')
    return self

  def to_json(self) -> str:
    """The config as JSON, how the server hands it to worker processes."""
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, text: str) -> 'ServingConfig':
    fields = json.loads(text)
    fields['batching'] = BatchingConfig(**fields['batching'])
    fields['logging'] = LogConfig(**fields['logging'])
    return cls(**fields).validate()


def local_config(home: str, **overrides) -> ServingConfig:
  """A local-backend config with paths under the pipeline's `home`."""
  home = os.path.abspath(home)
  log = overrides.pop('logging', LogConfig())
  if not log.directory:
    log = dataclasses.replace(log, directory=os.path.join(home, 'request_logs'))
  return ServingConfig(serving_dir=os.path.join(home, 'serving_model'),
                       logging=log, **overrides)
