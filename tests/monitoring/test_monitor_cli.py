"""`fmnist monitor` end to end on real images written as request logs."""

import json
import os

import pytest

from monitor_testenv import VERSION, summaries, write_logs  # pylint: disable=g-bad-import-order
from fmnist import cli
from monitoring import config as config_lib

N = 600  # above the default --min-instances


def _logs(home):
  return os.path.join(home, 'request_logs')


def test_healthy_traffic_exits_0_with_a_report(home, monitor, test_images):
  images, labels = test_images
  write_logs(_logs(home), images[:N], labels[:N])
  status, out, err = monitor()
  assert status == config_lib.EXIT_HEALTHY, err
  first, *rest = out.splitlines()
  assert first.startswith(f'HEALTHY: no anomalies in {N} served instances')
  assert f'model {VERSION}' in first
  assert ('baseline: train statistics of span 1, which the served model 7 '
          'was trained on (MLMD lineage)') in first
  assert rest[0].startswith('measured: skew image Jensen-Shannon ')
  report = rest[-1].split('report: ')[1]
  run_dir = os.path.dirname(report)
  for name in ('served_statistics.pb', 'anomalies_schema.pbtxt',
               'anomalies_skew.pbtxt', 'summary.json', 'report.html',
               'distributions.png', 'statistics.html'):
    assert os.path.getsize(os.path.join(run_dir, name)) > 0, name
  (summary,) = summaries(home)
  assert summary['verdict'] == 'healthy' and summary['instances'] == N
  assert summary['previous_run'] is None
  assert {(m['check'], m['feature']) for m in summary['measurements']} == {
      ('skew', 'image'), ('skew', 'predicted_class')}
  assert not any(m['alert'] for m in summary['measurements'])
  with open(report, encoding='utf-8') as f:
    page = f.read()
  assert 'HEALTHY' in page and 'distributions.png' in page
  assert 'statistics.html' in page and 'Jensen-Shannon' in page
  with open(os.path.join(run_dir, 'statistics.html'), encoding='utf-8') as f:
    assert 'facets' in f.read()
  with open(os.path.join(home, 'monitoring', 'index.html'),
            encoding='utf-8') as f:
    assert f'{summary["stamp"]}/report.html' in f.read()


def test_traffic_of_a_running_proxy_is_monitored(home, monitor, test_images):
  # The proxy rotates its log hourly or at 64 MB; until then the rows sit in
  # its .inprogress file, and a monitor run in the meantime must see them.
  images, labels = test_images
  write_logs(_logs(home), images[:N], labels[:N], close=False)
  (live,) = [n for n in os.listdir(_logs(home)) if n.endswith('.inprogress')]
  with open(os.path.join(_logs(home), live), 'a', encoding='utf-8') as f:
    f.write('{"timestamp": "2026-')  # a row being written right now
  status, out, err = monitor()
  assert status == config_lib.EXIT_HEALTHY, err
  assert out.startswith(f'HEALTHY: no anomalies in {N} served instances')
  assert 'unreadable' not in err
  (summary,) = summaries(home)
  assert summary['window']['skipped_rows'] == 0


def test_inverted_images_are_skew_then_drift(home, monitor, test_images):
  images, labels = test_images
  write_logs(_logs(home), images[:N], labels[:N], timestamp=1_700_000_000)
  assert monitor()[0] == config_lib.EXIT_HEALTHY
  # Dark garments on a light background, answered as usual.
  write_logs(_logs(home), 255 - images[N:2 * N], labels[N:2 * N])
  status, out, err = monitor('--last', str(N))
  assert status == config_lib.EXIT_UNHEALTHY, err
  lines = out.splitlines()
  assert lines[0].startswith(f'UNHEALTHY: 2 anomalies in {N} served')
  assert lines[1].startswith(
      "  [skew] feature 'image': High approximate Jensen-Shannon divergence "
      'between training and serving')
  assert lines[2].startswith(
      "  [drift] feature 'image': High approximate Jensen-Shannon divergence "
      'between current and previous')
  assert 'Traceback' not in err
  first, second = summaries(home)
  assert second['previous_run'] == first['stamp']
  assert second['verdict'] == 'unhealthy' and second['exit_code'] == 3
  alerts = {(m['check'], m['feature']) for m in second['measurements']
            if m['alert']}
  assert alerts == {('skew', 'image'), ('drift', 'image')}
  report = os.path.join(home, 'monitoring', second['stamp'], 'report.html')
  with open(report, encoding='utf-8') as f:
    assert 'UNHEALTHY' in f.read()
  with open(os.path.join(home, 'monitoring', second['stamp'],
                         'anomalies_skew.pbtxt'), encoding='utf-8') as f:
    assert 'COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH' in f.read()


def test_bad_rows_are_anomalies_or_skipped_never_a_crash(home, monitor,
                                                        test_images):
  images, labels = test_images
  write_logs(_logs(home), images[:N], labels[:N])
  row = {'timestamp': '2026-01-01T00:00:00.000Z', 'model_version': VERSION,
         'class_id': 2}
  bad = [json.dumps(dict(row, pixels=[0] * 783 + [300])),   # out of domain
         json.dumps(dict(row, pixels=[0] * 100)),           # wrong length
         json.dumps(dict(row, pixels=[0] * 784, class_id=12)),
         json.dumps(dict(row, pixels=[0] * 784))[:500]]     # truncated
  with open(os.path.join(_logs(home), 'requests-z-1-1.jsonl'), 'w',
            encoding='utf-8') as f:
    f.write('\n'.join(bad) + '\n')
  status, out, err = monitor()
  assert status == config_lib.EXIT_UNHEALTHY, err
  assert f'in {N + 3} served instances' in out.splitlines()[0]
  for text in ("[schema] feature 'image': Out-of-range values: Unexpectedly "
               'large value: 300',
               "[schema] feature 'image': Feature shape dropped",
               "[schema] feature 'predicted_class': Out-of-range values"):
    assert text in out
  assert ('warning: skipped 1 unreadable log row(s), e.g. '
          'requests-z-1-1.jsonl:4: not JSON') in err
  assert 'Traceback' not in err
  (summary,) = summaries(home)
  assert summary['window']['skipped_rows'] == 1


@pytest.mark.parametrize('setup, args, message', [
    ('nothing', [], 'error: no request logs: '),
    ('empty', [], 'error: no request log (*.jsonl) in '),
    ('few', [], 'error: only 100 served instances in '),
    ('few', ['--min-instances', '50', '--since', '2099-01-01'],
     'error: only 0 served instances since 2099-01-01T00:00:00Z'),
    ('no_run', [], 'error: no training statistics: no pipeline metadata at '),
    ('enough', ['--since', 'last week'], "error: --since 'last week': "),
    ('enough', ['--last', '10'], 'error: --last 10 is below --min-instances'),
    ('enough', ['--baseline-statistics', '/nowhere'],
     'error: no train statistics at /nowhere'),
])
def test_what_cannot_be_monitored_is_one_error_line(
    home, monitor, test_images, setup, args, message):
  images, labels = test_images
  if setup == 'empty':
    os.makedirs(_logs(home))
  if setup == 'few':
    write_logs(_logs(home), images[:100], labels[:100])
  if setup in ('no_run', 'enough'):
    write_logs(_logs(home), images[:N], labels[:N])
  if setup == 'no_run':
    os.remove(os.path.join(home, 'metadata.sqlite'))
  status, out, err = monitor(*args)
  assert status == config_lib.EXIT_USAGE
  assert err.startswith(message), err
  assert len(err.strip().splitlines()) == 1 and not out
  assert not os.path.exists(os.path.join(home, 'monitoring'))
  assert os.path.exists(os.path.join(home, 'metadata.sqlite')) == (
      setup != 'no_run')


def test_help():
  with pytest.raises(SystemExit) as exit_info:
    cli.main(['monitor', '--help'])
  assert exit_info.value.code == 0
