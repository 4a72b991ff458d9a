"""`fmnist monitor`: is what the endpoint receives still what it was trained on?

Prints one verdict line and the anomalies, writes HOME/monitoring/<stamp>/,
optionally POSTs an alert and starts a retraining run. Exit codes: 0 healthy,
3 unhealthy (schema anomalies, skew, drift or a statistical test's alarm), 4
unhealthy and the retraining run failed, 2 nothing could be monitored (the
`error:` line says why).
"""

import datetime
import os
import sys

from fmnist import options
from monitoring import config as config_lib
from monitoring import logs

# Webhook URLs carry a token: on Cloud Run this comes from Secret Manager.
ALERT_WEBHOOK_ENV = 'FMNIST_ALERT_WEBHOOK'


def register(sub) -> None:
  p = sub.add_parser(
      'monitor', help='check served traffic against the training data',
      description=' '.join(__doc__.split()))
  options.add_home(p)
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
  g.add_argument('--reference', default=None, metavar='PATH',
                 help='the statistical tests\' reference (.npz: the served '
                      'model\'s outputs and image features on held-out data; '
                      'default: computed once per model version from '
                      'HOME/serving_model and the span\'s eval split, cached '
                      'in the output directory)')
  g.add_argument('--alpha', type=float, default=config_lib.DEFAULT_ALPHA,
                 help='false-alarm rate of the statistical tests on natural '
                      'windows, Holm-corrected (default: %(default)s)')
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
  options.add_pipeline_knobs(g)
  options.add_vertex_args(p)
  p.set_defaults(func=run)


def monitor_config(args, now: datetime.datetime) -> config_lib.MonitorConfig:
  return config_lib.MonitorConfig.from_home(
      args.home, log_dir=args.log_dir, bq_table=args.bq_table,
      bq_api_endpoint=args.bq_api_endpoint, output_root=args.output_dir,
      since=logs.parse_since(args.since, now) if args.since else None,
      last=args.last, min_instances=args.min_instances,
      baseline_statistics=args.baseline_statistics,
      reference=args.reference, alpha=args.alpha,
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
  tests = summary['tests']
  for r in tests['results']:
    if not r['alarm']:
      print(f'tested: {r["name"]} {r["statistic_name"]} '
            f'{r["statistic"]:.4f}, p = {r["p_value"]:.2g} > '
            f'{r["threshold"]:.3g}')
  for s in tests['skipped']:
    print(f'skipped: {s["test"]}: {s["reason"]}')
  window = summary['window']
  if window['skipped_rows']:
    print(f'warning: skipped {window["skipped_rows"]} unreadable log row(s), '
          f'e.g. {window["skipped_examples"][0]}', file=sys.stderr)
  print(f'report: {result.report_path}', flush=True)


def run(args) -> int:
  # pylint: disable=g-import-not-at-top
  from monitoring import monitor
  from monitoring import retrain
  # pylint: enable=g-import-not-at-top
  now = datetime.datetime.now(datetime.timezone.utc)
  cfg = monitor_config(args, now)
  retrain_cfg = None
  credentials = None
  if args.retrain_on_drift:
    # Retraining config errors stop the command before any monitoring work.
    retrain_cfg = retrain.RetrainConfig(options.run_pipeline_config(args))
    credentials = retrain.credentials_for(retrain_cfg)
  result = monitor.run(cfg, now)
  line = monitor.headline(result.summary)
  _print_verdict(result, line)
  if result.healthy:
    return result.exit_code

  if cfg.webhook:
    sent = monitor.send_alert(cfg, result)
    if sent['delivered']:
      print(f'alert: sent to {sent["webhook"]}')
    else:
      print(f'warning: the alert webhook {sent["webhook"]} failed '
            f'({sent["error"]}); the report is written', file=sys.stderr)
  if retrain_cfg is None:
    return result.exit_code
  retraining = retrain.start(retrain_cfg, result.summary['baseline']['span'],
                             credentials)
  monitor.record_retraining(cfg, result, retraining.to_dict())
  if retraining.job:
    print(f'submitted {retraining.job}')
  if retraining.failed:
    print(f'error: retraining failed: {retraining.message}', file=sys.stderr)
    return config_lib.EXIT_RETRAIN_FAILED
  print(f'retraining: {retraining.message}')
  return result.exit_code
