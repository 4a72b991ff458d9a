"""The alert webhook against a real loopback HTTP server."""

import http.server
import json
import os

import pytest

from monitor_testenv import summaries, write_logs  # pylint: disable=g-bad-import-order
import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order
from monitoring import config as config_lib

N = 600


class Webhook(loopback.Loopback):
  """Records POSTed JSON bodies; answers `status`."""

  def __init__(self, status: int = 200):
    self.bodies, self.headers, self.paths = [], [], []
    self.status = status
    hook = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        del args

      def do_POST(self):  # pylint: disable=invalid-name
        length = int(self.headers.get('Content-Length') or 0)
        hook.bodies.append(json.loads(self.rfile.read(length)))
        hook.headers.append(dict(self.headers))
        hook.paths.append(self.path)
        self.send_response(hook.status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    super().__init__(Handler)


def _inverted_logs(home, test_images):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), 255 - images[:N], labels[:N])


def test_unhealthy_verdict_posts_the_alert(home, monitor, test_images):
  _inverted_logs(home, test_images)
  with Webhook() as hook:
    status, out, _ = monitor('--alert-webhook', f'{hook.url}/hooks/ml')
  assert status == config_lib.EXIT_UNHEALTHY
  (body,) = hook.bodies
  assert hook.headers[0]['Content-Type'] == 'application/json'
  (summary,) = summaries(home)
  report = os.path.join(home, 'monitoring', summary['stamp'], 'report.html')
  assert body['source'] == 'fmnist-monitor'
  assert body['verdict'] == 'unhealthy' and body['run'] == summary['stamp']
  assert body['text'] == out.splitlines()[0]
  assert body['report'] == report
  assert body['instances'] == N and body['model_versions'] == {'7': N}
  assert body['anomalies'] == summary['anomalies']
  assert any("feature 'image'" in a and 'Jensen-Shannon' in a
             for a in body['anomalies'])
  assert [(m['check'], m['feature']) for m in body['measurements']] == [
      ('skew', 'image')]
  assert body['window']['first'] and body['skipped_rows'] == 0
  assert f'alert: sent to {hook.url}/…' in out  # the path is the secret
  assert hook.paths == ['/hooks/ml']
  assert summary['alert']['delivered'] is True
  with open(report, encoding='utf-8') as f:
    assert 'alert POSTed to' in f.read()


def test_healthy_verdict_posts_nothing(home, monitor, test_images):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), images[:N], labels[:N])
  with Webhook() as hook:
    assert monitor('--alert-webhook', hook.url)[0] == (
        config_lib.EXIT_HEALTHY)
  assert not hook.bodies



def test_a_webhook_that_is_down_loses_nothing(home, monitor, test_images):
  _inverted_logs(home, test_images)
  port = loopback.free_port()
  url = f'http://127.0.0.1:{port}/services/T0/B0/s3cret'
  status, out, err = monitor('--alert-webhook', url, '--webhook-timeout', '2')
  assert status == config_lib.EXIT_UNHEALTHY
  # Printed and stored without the path, where webhook URLs keep the secret.
  assert (f'warning: the alert webhook http://127.0.0.1:{port}/… failed ('
          in err)
  assert 's3cret' not in out + err
  assert 'the report is written' in err and 'Traceback' not in err
  (summary,) = summaries(home)
  assert 's3cret' not in json.dumps(summary)
  assert summary['alert']['delivered'] is False
  assert 'refused' in summary['alert']['error'].lower()
  assert os.path.isfile(out.splitlines()[-1].split('report: ')[1])


@pytest.mark.parametrize('args', [
    ['--alert-webhook', 'hooks.example.com/T0/s3cret'],
    ['--alert-webhook', 'ftp://hooks.example.com/s3cret'],
    ['--alert-webhook', 'http:///s3cret'],
    ['--alert-webhook', 'http://127.0.0.1/s3cret', '--webhook-timeout', '0'],
])
def test_a_malformed_webhook_is_refused_before_any_work(home, monitor,
                                                        test_images, args):
  _inverted_logs(home, test_images)
  status, out, err = monitor(*args)
  assert status == config_lib.EXIT_USAGE and not out
  assert err.startswith('error: --') and len(err.strip().splitlines()) == 1
  assert 's3cret' not in err
  assert not os.path.exists(os.path.join(home, 'monitoring'))


def test_a_webhook_answering_500_is_reported(home, monitor, test_images):
  _inverted_logs(home, test_images)
  with Webhook(status=500) as hook:
    status, _, err = monitor('--alert-webhook', hook.url)
  assert status == config_lib.EXIT_UNHEALTHY and len(hook.bodies) == 1
  assert 'failed (HTTP 500' in err
  (summary,) = summaries(home)
  assert summary['alert']['error'].startswith('HTTP 500')


def test_the_webhook_can_come_from_the_environment(home, monitor, test_images,
                                                   monkeypatch):
  # The Cloud Run job passes it from Secret Manager (infra/monitor_job.yaml).
  _inverted_logs(home, test_images)
  with Webhook() as hook:
    monkeypatch.setenv('FMNIST_ALERT_WEBHOOK', f'{hook.url}/from-env')
    status, out, _ = monitor()
  assert status == config_lib.EXIT_UNHEALTHY and len(hook.bodies) == 1
  assert f'alert: sent to {hook.url}/…' in out
  assert hook.paths == ['/from-env']
