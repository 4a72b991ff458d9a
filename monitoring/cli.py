"""`fmnist monitor`: is what the endpoint receives still what it was trained on?

Prints one verdict line and the anomalies, writes HOME/monitoring/<stamp>/,
optionally POSTs an alert and starts a retraining run. Exit codes: 0 healthy,
3 unhealthy (schema anomalies, skew or drift), 4 unhealthy and the retraining
run failed, 2 nothing could be monitored (the `error:` line says why).
"""

import datetime
import os
import re
import sys

from monitoring import config as config_lib
from monitoring.config import MonitorError

# Webhook URLs carry a token: on Cloud Run this comes from Secret Manager.
ALERT_WEBHOOK_ENV = 'FMNIST_ALERT_WEBHOOK'
_RELATIVE = re.compile(r'^(\d+)([smhd])$')
_UNITS = {'s': 'seconds', 'm': 'minutes', 'h': 'hours', 'd': 'days'}


def parse_since(text: str, now: datetime.datetime) -> datetime.datetime:
  """`24h`, `90m`, `7d` before `now`, or an ISO-8601 time (UTC if naive)."""
  m = _RELATIVE.match(text.strip())
  if m:
    return now - datetime.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
  from monitoring import logs  # pylint: disable=g-import-not-at-top
  try:
    return logs.parse_time(text)
  except ValueError:
    raise MonitorError(f'--since {text!r}: expected a duration like 24h, 90m '
                       'or 7d, or a time like 2026-01-31T12:00:00Z') from None


def register(subparsers) -> None:
  """Adds `monitor` to the `fmnist` CLI."""
  from fmnist import cli  # pylint: disable=g-import-not-at-top
  from pipeline import vertex_cli  # pylint: disable=g-import-not-at-top
  p = subparsers.add_parser(
      'monitor', help='check served traffic against the training data',
      description=' '.join(__doc__.split()))
  cli.add_home(p)
  g = p.add_argument_group('window')
  g.add_argument('--log-dir', default=None,
                 help='request logs of the proxy (default: HOME/request_logs)')
  g.add_argument('--bq-table', default=None, metavar='PROJECT.DATASET.TABLE',
                 help='read the BigQuery request log the proxy writes on '
                      'Cloud Run (`fmnist serve --log-sink bigquery`) instead '
                      'of --log-dir')
  g.add_argument('--bq-api-endpoint', default=None, metavar='URL',
                 help='BigQuery API host override, e.g. an emulator (http:// '
                      'uses anonymous credentials)')
  g.add_argument('--since', default=None, metavar='WHEN',
                 help='only instances served since then: 24h, 90m, 7d, or an '
                      'ISO-8601 time')
  g.add_argument('--last', type=int, default=None, metavar='N',
                 help='only the newest N instances')
  g.add_argument('--min-instances', type=int,
                 default=config_lib.DEFAULT_MIN_INSTANCES,
                 help='refuse smaller windows, whose natural variation '
                      'alerts (default: %(default)s, measured)')
  g = p.add_argument_group('baseline and outputs')
  g.add_argument('--baseline-statistics', default=None, metavar='PATH',
                 help='a StatisticsGen output directory or statistics file '
                      'to compare with (default: the served model\'s training '
                      'statistics, found in HOME\'s MLMD)')
  g.add_argument('--output-dir', default=None,
                 help='where run directories and the index go (default: '
                      'HOME/monitoring)')
  g = p.add_argument_group('alert')
  g.add_argument('--alert-webhook', metavar='URL',
                 default=os.environ.get(ALERT_WEBHOOK_ENV) or None,
                 help='POST a JSON alert here when the verdict is unhealthy '
                      f'(default: ${ALERT_WEBHOOK_ENV}, e.g. from a secret)')
  g.add_argument('--webhook-timeout', type=float, default=10.0,
                 help='seconds (default: %(default)s)')
  g = p.add_argument_group(
      'retraining', 'With --retrain-on-drift an unhealthy verdict starts '
      '`fmnist pipeline run` with these flags on the newest ingested span.')
  g.add_argument('--retrain-on-drift', action='store_true',
                 help='start a pipeline run when the verdict is unhealthy')
  g.add_argument('--runner', choices=('local', 'vertex'), default='local',
                 help='where the retraining run goes (default: %(default)s)')
  cli.add_pipeline_knobs(g)
  vertex_cli.add_args(p)
  p.set_defaults(func=cmd_monitor)


def _config(args, now: datetime.datetime) -> config_lib.MonitorConfig:
  if args.min_instances < 1:
    raise MonitorError('--min-instances must be at least 1')
  if args.bq_table is not None:
    from monitoring import bigquery_logs  # pylint: disable=g-import-not-at-top
    bigquery_logs.parse_table(args.bq_table)
    if args.log_dir is not None:
      raise MonitorError('--log-dir and --bq-table name two log sources; '
                         'pass one')
    if args.bq_api_endpoint is not None and not re.match(
        r'^https?://[^/]', args.bq_api_endpoint):
      raise MonitorError(f'--bq-api-endpoint {args.bq_api_endpoint!r}: '
                         'expected an http:// or https:// URL')
  elif args.bq_api_endpoint is not None:
    raise MonitorError('--bq-api-endpoint needs --bq-table')
  if args.last is not None and args.last < args.min_instances:
    raise MonitorError(f'--last {args.last} is below --min-instances '
                       f'{args.min_instances}')
  return config_lib.MonitorConfig.from_home(
      args.home, log_dir=args.log_dir, bq_table=args.bq_table,
      bq_api_endpoint=args.bq_api_endpoint, output_root=args.output_dir,
      since=parse_since(args.since, now) if args.since else None,
      last=args.last, min_instances=args.min_instances,
      baseline_statistics=args.baseline_statistics,
      webhook=args.alert_webhook, webhook_timeout=args.webhook_timeout)


def _print_verdict(result, line: str) -> None:
  summary = result.summary
  print(line)
  for anomaly in summary['anomalies']:
    print(f'  {anomaly}')
  print('measured: ' + '; '.join(
      f'{m["check"]} {m["feature"]} {m["measure"]} {m["value"]:.4f} '
      f'{">" if m["alert"] else "<="} {m["threshold"]:g}'
      for m in summary['measurements']))
  window = summary['window']
  if window['skipped_rows']:
    print(f'warning: skipped {window["skipped_rows"]} unreadable log row(s), '
          f'e.g. {window["skipped_examples"][0]}', file=sys.stderr)
  print(f'report: {result.report_path}', flush=True)


def _alert(cfg: config_lib.MonitorConfig, result, line: str) -> dict:
  from monitoring import alert  # pylint: disable=g-import-not-at-top
  error = alert.send(cfg.webhook,
                     alert.payload(result.summary, result.report_path, line),
                     cfg.webhook_timeout)
  shown = alert.redact(cfg.webhook)  # the URL's path is its secret
  if error is None:
    print(f'alert: sent to {shown}')
  else:
    print(f'warning: the alert webhook {shown} failed ({error}); the '
          'report is written', file=sys.stderr)
  return {'webhook': shown, 'delivered': error is None, 'error': error,
          'message': (f'alert POSTed to {shown}' if error is None else
                      f'alert to {shown} failed: {error}')}


def cmd_monitor(args) -> int:
  now = datetime.datetime.now(datetime.timezone.utc)
  cfg = _config(args, now)
  from monitoring import retrain  # pylint: disable=g-import-not-at-top
  # Retraining config errors stop the command before any monitoring work.
  credentials = retrain.prepare(args) if args.retrain_on_drift else None
  from monitoring import history  # pylint: disable=g-import-not-at-top
  from monitoring import monitor  # pylint: disable=g-import-not-at-top
  result = monitor.run(cfg, now)
  line = monitor.headline(result.summary)
  _print_verdict(result, line)
  if result.healthy:
    return result.exit_code

  summary = result.summary
  if cfg.webhook:
    summary['alert'] = _alert(cfg, result, line)
    history.record(cfg.output_root, result.run_dir, summary)
  if not args.retrain_on_drift:
    return result.exit_code
  retraining = retrain.start(args, summary['baseline']['span'], credentials)
  summary['retraining'] = retraining.to_dict()
  history.record(cfg.output_root, result.run_dir, summary)
  if retraining.failed:
    print(f'error: retraining failed: {retraining.message}', file=sys.stderr)
    return config_lib.EXIT_RETRAIN_FAILED
  print(f'retraining: {retraining.message}')
  return result.exit_code
