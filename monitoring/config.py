"""What a monitoring run reads, checks against and writes: one typed config.

The thresholds that are not in the curated schema, and the default window
size, come from `benchmarks/monitoring_windows.py` (docs/monitoring.md has the
figures): natural traffic (real test-set images through the served model)
stays below them at the default window size, every measured shift is above.
"""

import dataclasses
import datetime
import os
import re
from typing import Optional, Tuple
import urllib.parse

from pipeline import configs
from pipeline.errors import UserError

# Exit codes of `fmnist monitor` (2 is every CLI's "fix your command").
EXIT_HEALTHY = 0
EXIT_USAGE = 2
EXIT_UNHEALTHY = 3
EXIT_RETRAIN_FAILED = 4  # unhealthy, and the retraining run failed to start/run

# Verdicts, as summary.json and history.json spell them.
HEALTHY = 'healthy'
UNHEALTHY = 'unhealthy'

# L-infinity distance between the served predicted-class distribution and the
# training label distribution (skew), and between two monitoring windows
# (drift: two samples, so ~1.4x the skew's noise). Below 0.1, so a class that
# stops arriving (its share 0.1 -> 0) is always skew.
PREDICTION_SKEW_LINF = 0.075
PREDICTION_DRIFT_LINF = 0.09
# The smallest measured window whose natural variation stays clearly below
# every threshold (at 300 the largest natural drift reached 0.09).
DEFAULT_MIN_INSTANCES = 500
# Family-wise false-alarm rate of the statistical tests on natural windows
# (Holm-corrected; benchmarks/monitor_power.py measures it).
DEFAULT_ALPHA = 0.05

LOG_DIR_NAME = 'request_logs'
OUTPUT_DIR_NAME = 'monitoring'


# PROJECT.DATASET.TABLE, with BigQuery's naming rules (project IDs as GCP's).
TABLE_RE = re.compile(r'^(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])\.'
                      r'(?P<dataset>\w{1,1024})\.(?P<table>[\w-]{1,1024})$')


class MonitorError(UserError):
  """Nothing can be monitored as asked; the message says what to fix."""


def parse_table(name: str) -> Tuple[str, str, str]:
  """(project, dataset, table) of `--bq-table`, or a MonitorError."""
  m = TABLE_RE.match(name or '')
  if not m:
    hint = (" (bq's PROJECT:DATASET.TABLE is written with a dot here)"
            if ':' in (name or '') else '')
    raise MonitorError(f'--bq-table {name!r}: expected PROJECT.DATASET.TABLE, '
                       f'e.g. my-project.fmnist_monitoring.requests{hint}')
  return m['project'], m['dataset'], m['table']


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
  """Every input and knob of one monitoring run."""
  home: str
  log_dir: str                    # the proxy's JSONL request logs
  output_root: str                # HOME/monitoring: one directory per run
  metadata_path: str              # the local pipeline's SQLite MLMD
  schema_path: str                # the curated schema.pbtxt
  since: Optional[datetime.datetime] = None  # only instances served from then
  last: Optional[int] = None      # only the newest N instances
  # The proxy's BigQuery log (PROJECT.DATASET.TABLE), read instead of log_dir
  # when set: through `bq_api_endpoint` if set (an emulator or test server),
  # transient errors retried for `bq_timeout_s` in all.
  bq_table: Optional[str] = None
  bq_api_endpoint: Optional[str] = None
  bq_timeout_s: float = 60.0
  min_instances: int = DEFAULT_MIN_INSTANCES
  # A StatisticsGen output (or one statistics file) to use instead of the
  # served model's training statistics from MLMD.
  baseline_statistics: Optional[str] = None
  prediction_skew_linf: float = PREDICTION_SKEW_LINF
  prediction_drift_linf: float = PREDICTION_DRIFT_LINF
  webhook: Optional[str] = None
  webhook_timeout: float = 10.0
  # The statistical tests (monitoring/detectors.py): their family-wise false
  # alarm rate on natural windows, and a reference file or artifact to use
  # instead of the served model's MonitoringReference found in MLMD.
  alpha: float = DEFAULT_ALPHA
  reference: Optional[str] = None

  def __post_init__(self):
    if self.min_instances < 1:
      raise MonitorError('--min-instances must be at least 1')
    if not 0 < self.alpha < 1:
      raise MonitorError(f'--alpha {self.alpha}: expected a probability '
                         'between 0 and 1, e.g. 0.05')
    if self.webhook is not None:
      # Checked before any monitoring work; the URL is not echoed, as
      # incoming-webhook URLs carry their secret (monitoring/alert.py).
      parts = urllib.parse.urlsplit(self.webhook)
      if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise MonitorError('--alert-webhook (or FMNIST_ALERT_WEBHOOK): '
                           'expected an http:// or https:// URL with a host')
    if not self.webhook_timeout > 0:
      raise MonitorError(f'--webhook-timeout {self.webhook_timeout}: expected '
                         'seconds above 0')
    if self.bq_table is not None:
      parse_table(self.bq_table)
      if self.bq_api_endpoint is not None and not re.match(
          r'^https?://[^/]', self.bq_api_endpoint):
        raise MonitorError(f'--bq-api-endpoint {self.bq_api_endpoint!r}: '
                           'expected an http:// or https:// URL')
    elif self.bq_api_endpoint is not None:
      raise MonitorError('--bq-api-endpoint needs --bq-table')
    if self.last is not None and self.last < self.min_instances:
      raise MonitorError(f'--last {self.last} is below --min-instances '
                         f'{self.min_instances}')

  @classmethod
  def from_home(cls, home: str = configs.DEFAULT_HOME,
                **overrides) -> 'MonitorConfig':
    """Paths as the local pipeline and the proxy lay them out under `home`.

    Overrides that are None keep the default; a log directory and a BigQuery
    table are two sources, so giving both is refused.
    """
    if overrides.get('log_dir') is not None and overrides.get(
        'bq_table') is not None:
      if overrides.get('bq_table'):
        parse_table(overrides['bq_table'])
      raise MonitorError('--log-dir and --bq-table name two log sources; '
                         'pass one')
    pipeline = configs.PipelineConfig.from_home(home)
    home = os.path.abspath(home)
    values = dict(
        home=home,
        log_dir=os.path.join(home, LOG_DIR_NAME),
        output_root=os.path.join(home, OUTPUT_DIR_NAME),
        metadata_path=pipeline.metadata_path,
        schema_path=os.path.join(pipeline.schema_dir, 'schema.pbtxt'))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)

  @property
  def log_source(self) -> str:
    """Where the window is read from, for messages and the report."""
    return (f'BigQuery table {self.bq_table}' if self.bq_table
            else self.log_dir)
