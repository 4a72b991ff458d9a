"""One monitoring run: request logs in; statistics, anomalies and report out.

The logs are JSONL files (monitoring/logs.py) or the BigQuery table the proxy
logs to on Cloud Run (monitoring/bigquery_logs.py); both give a `logs.Window`
and everything after it is the same.
"""

import dataclasses
import datetime
import os
from typing import Dict, Optional

import tensorflow_data_validation as tfdv

from monitoring import alert
from monitoring import baseline as baseline_lib
from monitoring import bigquery_logs
from monitoring import detectors
from monitoring import history
from monitoring import logs
from monitoring import reference as reference_lib
from monitoring import report
from monitoring import statistics
from monitoring.config import EXIT_HEALTHY
from monitoring.config import EXIT_UNHEALTHY
from monitoring.config import HEALTHY
from monitoring.config import MonitorConfig
from monitoring.config import MonitorError
from monitoring.config import UNHEALTHY


@dataclasses.dataclass(frozen=True)
class Result:
  summary: Dict          # what summary.json holds
  run_dir: str
  report_path: str
  exit_code: int         # EXIT_HEALTHY or EXIT_UNHEALTHY

  @property
  def healthy(self) -> bool:
    return self.exit_code == EXIT_HEALTHY


def _iso(t: Optional[datetime.datetime]) -> str:
  if t is None:
    return ''
  return t.astimezone(datetime.timezone.utc).isoformat(
      timespec='seconds').replace('+00:00', 'Z')


def read_window(cfg: MonitorConfig) -> logs.Window:
  """The window to check; refuses what would not be a meaningful check."""
  if cfg.bq_table:
    window = bigquery_logs.read_window(cfg.bq_table, cfg.since, cfg.last,
                                       cfg.bq_api_endpoint, cfg.bq_timeout_s)
  else:
    home_hint = f'fmnist serve --home {cfg.home}'
    if not os.path.isdir(cfg.log_dir):
      raise MonitorError(f'no request logs: {cfg.log_dir} does not exist; the '
                         f'proxy writes them while serving (`{home_hint}`), or '
                         'point --log-dir at them')
    if not logs.log_files(cfg.log_dir):
      raise MonitorError(f'no request log (*.jsonl) in {cfg.log_dir}: nothing '
                         f'has been served yet (`{home_hint}`), or point '
                         '--log-dir at the logs')
    window = logs.read_window(cfg.log_dir, cfg.since, cfg.last)
  if len(window) < cfg.min_instances:
    where = f' since {_iso(cfg.since)}' if cfg.since else ''
    raise MonitorError(
        f'only {len(window)} served instances{where} in {cfg.log_source} '
        f'({window.skipped} unreadable rows skipped); at least '
        f'{cfg.min_instances} are needed (--min-instances): smaller windows '
        'vary too much to tell drift from chance (docs/monitoring.md)')
  return window


def find_baseline(cfg: MonitorConfig,
                  served_version: Optional[str]) -> baseline_lib.Baseline:
  if cfg.baseline_statistics:
    return baseline_lib.from_path(cfg.baseline_statistics)
  return baseline_lib.from_lineage(cfg.metadata_path, served_version)


def run(cfg: MonitorConfig,
        now: Optional[datetime.datetime] = None) -> Result:
  """Checks the window and writes every output; alerting is the caller's."""
  now = now or datetime.datetime.now(datetime.timezone.utc)
  window = read_window(cfg)
  base = find_baseline(cfg, window.served_version)
  schema = statistics.monitoring_schema(
      tfdv.load_schema_text(cfg.schema_path), cfg.prediction_skew_linf,
      cfg.prediction_drift_linf)
  served = statistics.served_statistics(
      [i.pixels for i in window.instances],
      [i.class_id for i in window.instances], schema)
  training = statistics.training_baseline(base.statistics)
  previous = history.previous(cfg.output_root)
  checks = statistics.check(served, schema, training,
                            previous[1] if previous else None)
  ref, why_not = reference_lib.find(cfg, base)
  others = (reference_lib.find_others(cfg, base, window.versions())
            if ref is not None else {})
  tests = detectors.run(
      ref, [i.pixels for i in window.instances],
      [i.probabilities for i in window.instances],
      [i.class_id for i in window.instances],
      [i.model_version for i in window.instances], cfg.alpha, why_not,
      others)

  stamp, tmp_dir = history.new_run_dir(cfg.output_root, now)
  with open(os.path.join(tmp_dir, history.SERVED_STATISTICS), 'wb') as f:
    f.write(served.SerializeToString())
  for check, anomalies in checks.by_check():
    tfdv.write_anomalies_text(
        anomalies, os.path.join(tmp_dir, f'anomalies_{check}.pbtxt'))
  training_name = (f'training (span {base.span})' if base.span is not None
                   else 'training')
  report.plot_distributions(served, training,
                            os.path.join(tmp_dir, report.DISTRIBUTIONS_PNG),
                            training_name)
  report.write_statistics_view(served, training,
                               os.path.join(tmp_dir, report.STATISTICS_HTML),
                               training_name)
  if ref is not None:
    report.plot_tests(ref, [i.pixels for i in window.instances],
                      [i.probabilities for i in window.instances],
                      os.path.join(tmp_dir, report.TESTS_PNG))
  run_dir = history.publish(tmp_dir, cfg.output_root, stamp)

  healthy = checks.healthy and not tests.alarm
  summary = {
      'stamp': stamp,
      'time': _iso(now),
      'verdict': HEALTHY if healthy else UNHEALTHY,
      'exit_code': EXIT_HEALTHY if healthy else EXIT_UNHEALTHY,
      'instances': len(window),
      'window': {
          'first': _iso(window.first), 'last': _iso(window.last),
          'since': _iso(cfg.since) or None, 'last_n': cfg.last,
          'log_dir': None if cfg.bq_table else cfg.log_dir,
          'bq_table': cfg.bq_table, 'files': len(window.files),
          'skipped_rows': window.skipped,
          'skipped_examples': list(window.skipped_examples),
      },
      'model_versions': window.versions(),
      'baseline': {'description': base.description, 'uri': base.uri,
                   'span': base.span, 'model_version': base.model_version},
      'previous_run': previous[0] if previous else None,
      'anomalies': checks.lines() + tests.lines(),
      'measurements': [dict(dataclasses.asdict(m), alert=m.alert)
                       for m in checks.measurements],
      'tests': tests.to_dict(),
      'alert': None,
      'retraining': None,
  }
  report_path = history.record(cfg.output_root, run_dir, summary)
  return Result(summary=summary, run_dir=run_dir, report_path=report_path,
                exit_code=summary['exit_code'])


def headline(summary: Dict) -> str:
  """The one summary line the CLI prints and the alert carries."""
  n = len(summary['anomalies'])
  versions = ', '.join(summary['model_versions'])
  found = (f'{n} anomal{"y" if n == 1 else "ies"}' if n else 'no anomalies')
  return (f'{summary["verdict"].upper()}: {found} in {summary["instances"]} '
          f'served instances ({summary["window"]["first"]} to '
          f'{summary["window"]["last"]}, model {versions}); baseline: '
          f'{summary["baseline"]["description"]}')


def send_alert(cfg: MonitorConfig, result: Result) -> Dict:
  """POSTs the alert of an unhealthy run to `cfg.webhook`; records how it went.

  Delivery failures are part of the returned outcome, not raised: the report
  is written and the exit code still tells the scheduler.
  """
  line = headline(result.summary)
  error = alert.send(cfg.webhook,
                     alert.payload(result.summary, result.report_path, line),
                     cfg.webhook_timeout)
  shown = alert.redact(cfg.webhook)  # the URL's path is its secret
  outcome = {'webhook': shown, 'delivered': error is None, 'error': error,
             'message': (f'alert POSTed to {shown}' if error is None else
                         f'alert to {shown} failed: {error}')}
  result.summary['alert'] = outcome
  history.record(cfg.output_root, result.run_dir, result.summary)
  return outcome


def record_retraining(cfg: MonitorConfig, result: Result,
                      retraining: Dict) -> None:
  """Adds what the retraining trigger did to the run's summary and index."""
  result.summary['retraining'] = retraining
  history.record(cfg.output_root, result.run_dir, result.summary)
