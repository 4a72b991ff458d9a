"""`fmnist monitor --bq-table`: the proxy's BigQuery log, read back.

Rows are written by the proxy's own `BigQuerySink` (insertAll) into a
loopback server speaking BigQuery's REST API, and read by the real
`google.cloud.bigquery` client (jobs.query, jobs.get, jobs.getQueryResults
with pages), so the test sees the requests the real client sends.
"""

import datetime
import json
import os
import time

from google.protobuf import text_format
import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

import fake_servers  # pylint: disable=g-bad-import-order
from monitor_testenv import VERSION, summaries, write_bigquery, write_logs  # pylint: disable=g-bad-import-order
from monitoring import bigquery_logs
from monitoring import config as config_lib
from monitoring.config import MonitorError

N = 600  # above the default --min-instances
TABLE = 'proj-a.fmnist_monitoring.requests'
UTC = datetime.timezone.utc


@pytest.fixture(scope='module')
def bq_server():
  # One server per module: stopping one takes its 0.5 s poll interval.
  with fake_servers.bigquery(tables=[TABLE], forbidden=('proj-a.secret.logs',),
                             page_rows=5) as server:
    yield server


@pytest.fixture
def bq(bq_server):
  """The BigQuery fake holding an empty TABLE; pages of 5 rows (requests)."""
  for recorded in (bq_server.rows, bq_server.tables, bq_server.jobs,
                   bq_server.requests):
    recorded.clear()
  return bq_server


def _run(home, output_dir):
  """(summary, served statistics) of the one run under `output_dir`."""
  (summary,) = summaries(home, output_dir)
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  with open(os.path.join(output_dir, summary['stamp'], 'served_statistics.pb'),
            'rb') as f:
    stats.ParseFromString(f.read())
  return summary, stats


def test_round_trip_gives_the_jsonl_verdict_and_statistics(
    home, monitor, test_images, bq):
  images, labels = test_images
  old = time.time() - 3 * 86400  # outside --since in both sources
  recent = time.time() - 60
  # Dark garments on a light background: skew against training.
  traffic = [(images[:100], labels[:100], old),
             (255 - images[100:100 + N], labels[100:100 + N], recent)]
  for pixels, classes, when in traffic:
    write_bigquery(TABLE, bq.url, pixels, classes, timestamp=when)
    write_logs(os.path.join(home, 'request_logs'), pixels, classes,
               timestamp=when)
  assert len(bq.rows) == 4 + 19  # one row per request of up to 32 images

  since = datetime.datetime.fromtimestamp(recent - 3600, UTC).isoformat()
  bq_dir, jsonl_dir = os.path.join(home, 'bq'), os.path.join(home, 'jsonl')
  from_bq = monitor('--since', since, '--output-dir', bq_dir,
                    '--bq-table', TABLE, '--bq-api-endpoint', bq.url)
  from_jsonl = monitor('--since', since, '--output-dir', jsonl_dir)
  assert from_bq[0] == from_jsonl[0] == config_lib.EXIT_UNHEALTHY, from_bq[2]
  assert 'Traceback' not in from_bq[2]
  # The same printed verdict, anomalies and measurements; only the report
  # path differs.
  assert from_bq[1].splitlines()[:-1] == from_jsonl[1].splitlines()[:-1]
  verdict, anomaly = from_bq[1].splitlines()[:2]
  assert verdict.startswith(f'UNHEALTHY: 1 anomaly in {N} served instances')
  assert f'model {VERSION}' in verdict
  assert anomaly.startswith("  [skew] feature 'image': High approximate "
                            'Jensen-Shannon divergence')

  bq_summary, bq_stats = _run(home, bq_dir)
  jsonl_summary, jsonl_stats = _run(home, jsonl_dir)
  assert text_format.MessageToString(bq_stats) == (
      text_format.MessageToString(jsonl_stats))
  for key in ('verdict', 'instances', 'model_versions', 'anomalies',
              'measurements'):
    assert bq_summary[key] == jsonl_summary[key], key
  for key in ('first', 'last', 'since', 'skipped_rows'):
    assert bq_summary['window'][key] == jsonl_summary['window'][key], key
  assert bq_summary['window']['bq_table'] == TABLE
  assert bq_summary['window']['log_dir'] is None
  report = os.path.join(bq_dir, bq_summary['stamp'], 'report.html')
  with open(report, encoding='utf-8') as f:
    assert f'from BigQuery table {TABLE}' in f.read()

  # What the real client sent: one parameterized query, then result pages.
  posts = [r for r in bq.requests if r['path'].split('?')[0].endswith(
      '/projects/proj-a/queries')]
  (query,) = [r['body'] for r in posts]
  assert 'WHERE logging_time >= @since' in query['query']
  assert query['queryParameters'][0]['name'] == 'since'
  assert query['useLegacySql'] is False
  pages = [r for r in bq.requests if '/queries/' in r['path']]
  assert len(pages) == 3  # 19 rows in pages of 5: the first came with the query


def _row(when, pixels=None, class_ids=3, request_id='1', **overrides):
  """A row as Vertex request-response logging (and the proxy) lays it out."""
  pixels = [0] * 784 if pixels is None else pixels
  row = {'endpoint': 'fmnist-proxy', 'deployed_model_id': VERSION,
         'logging_time': when, 'request_id': request_id,
         'request_payload': [json.dumps({'pixels': pixels})],
         'response_payload': [json.dumps({'probabilities': [0.1] * 10,
                                          'class_ids': class_ids,
                                          'class_names': 'Dress'})]}
  row.update(overrides)
  return row


def test_unreadable_payloads_are_skipped_and_named_odd_ones_kept(bq):
  def at(second):
    return f'2026-01-01T00:00:{second:02d}.000Z'
  good = json.dumps({'pixels': [0] * 784})
  bq.tables[TABLE] = [
      _row(at(10), request_id='10'),
      _row(at(11), request_id='11', request_payload=[good, good[:100]]),
      _row(at(12), request_id='12', pixels='0,0,0'),
      _row(at(13), request_id='13', pixels=[0.5] * 784),
      _row(at(14), request_id='14', class_ids='Dress'),
      _row(at(15), request_id='15', response_payload=['{"class_ids":']),
      _row(None, request_id='16'),
      _row(at(17), request_id='17', request_payload=[]),
      _row(at(18), request_id='18', request_payload=['[1, 2, 3]']),
      _row(at(19), request_id='19', pixels=[300] * 784),  # kept: TFDV's domain
      _row(at(20), request_id='20', pixels=[0] * 100),    # kept: TFDV's shape
      _row(at(21), request_id='21', response_payload=[]),  # kept: no class
  ]
  window = bigquery_logs.read_window(TABLE, api_endpoint=bq.url)
  assert [len(i.pixels) for i in window.instances] == [784] * 3 + [100, 784]
  assert [i.class_id for i in window.instances] == [3, 3, 3, 3, None]
  assert window.first == datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
  assert window.versions() == {VERSION: 5}
  assert window.skipped == 8 and window.files == ()
  # Quoted newest first, as the JSONL reader quotes the newest file first.
  assert window.skipped_examples == (
      f'request 18 ({at(18)}) instance 0: request_payload is not a JSON '
      'object',
      f'request 17 ({at(17)}): no request_payload',
      f'request 15 ({at(15)}) instance 0: response_payload is not JSON '
      '(Expecting value: line 1 column 14 (char 13))',
      f"request 14 ({at(14)}) instance 0: 'class_ids' is not an integer",
      f"request 13 ({at(13)}) instance 0: 'pixels' is not a list of "
      'integers')


def test_an_unreadable_row_is_counted_in_the_verdict_not_fatal(
    home, monitor, test_images, bq):
  images, labels = test_images
  write_bigquery(TABLE, bq.url, images[:N], labels[:N])
  now = datetime.datetime.now(UTC).isoformat()
  bq.tables[TABLE].append(_row(now, request_id='99',
                               request_payload=['{"pixels": [0, 1']))
  status, out, err = monitor('--bq-table', TABLE, '--bq-api-endpoint', bq.url)
  assert status == config_lib.EXIT_HEALTHY, err
  assert out.startswith(f'HEALTHY: no anomalies in {N} served instances')
  assert err.startswith('warning: skipped 1 unreadable log row(s), e.g. '
                        'request 99 (')
  assert 'instance 0: request_payload is not JSON' in err
  (summary,) = summaries(home)
  assert summary['window']['skipped_rows'] == 1


def test_last_stops_paging_once_n_readable_instances_are_in(bq):
  t0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
  rows = []
  for k in range(40):  # one instance per request, a second apart
    when = (t0 + datetime.timedelta(seconds=k)).isoformat()
    rows.append(_row(when, pixels=[k] * 784, request_id=str(k)))
  rows[-2]['request_payload'] = ['not json']  # among the newest: not counted
  bq.tables[TABLE] = rows
  window = bigquery_logs.read_window(TABLE, last=7, api_endpoint=bq.url)
  assert [i.pixels[0] for i in window.instances] == [32, 33, 34, 35, 36, 37,
                                                      39]
  assert window.skipped == 1
  # 8 rows were needed: the page of 5 the query returned and one more.
  assert len([r for r in bq.requests if '/queries/' in r['path']]) == 1

  since = bigquery_logs.read_window(TABLE, since=t0 + datetime.timedelta(
      seconds=30), api_endpoint=bq.url)
  assert [i.pixels[0] for i in since.instances] == [
      30, 31, 32, 33, 34, 35, 36, 37, 39]
  assert since.first == t0 + datetime.timedelta(seconds=30)


@pytest.mark.parametrize('args, message', [
    (['--bq-table', 'proj-a.fmnist_monitoring.missing'],
     'error: --bq-table proj-a.fmnist_monitoring.missing: Not found: Table '
     'proj-a:fmnist_monitoring.missing was not found in location US; create '
     'the table with `bq mk --table proj-a:fmnist_monitoring.missing '
     'serving/bigquery_schema.json` and log to it with `fmnist serve '
     '--log-sink bigquery --bq-table proj-a.fmnist_monitoring.missing`'),
    (['--bq-table', 'proj-a.secret.logs'],
     'error: --bq-table proj-a.secret.logs: permission denied (Access Denied: '
     'Table proj-a:secret.logs: User does not have permission to query table '
     'proj-a:secret.logs, or perhaps it does not exist.); the identity '
     'running the monitor needs roles/bigquery.jobUser on project proj-a and '
     'roles/bigquery.dataViewer on dataset secret'),
    (['--bq-table', TABLE],
     f'error: only 0 served instances in BigQuery table {TABLE} (0 unreadable '
     'rows skipped); at least 500 are needed'),
    (['--bq-table', TABLE, '--since', '1h', '--min-instances', '1'],
     'error: only 0 served instances since '),
    (['--bq-table', 'proj-a:fmnist_monitoring.requests'],
     "error: --bq-table 'proj-a:fmnist_monitoring.requests': expected "
     'PROJECT.DATASET.TABLE, e.g. my-project.fmnist_monitoring.requests '
     "(bq's PROJECT:DATASET.TABLE is written with a dot here)"),
    (['--bq-table', 'requests'], "error: --bq-table 'requests': expected "),
    (['--bq-table', TABLE, '--log-dir', '/tmp'],
     'error: --log-dir and --bq-table name two log sources; pass one'),
    (['--log-dir', '/tmp'], 'error: --bq-api-endpoint needs --bq-table'),
    (['--bq-table', TABLE, '--bq-api-endpoint', 'localhost:9050'],
     "error: --bq-api-endpoint 'localhost:9050': expected an http:// or "
     'https:// URL'),
])
def test_what_cannot_be_read_is_one_error_line(home, monitor, bq, args,
                                               message):
  status, out, err = monitor('--bq-api-endpoint', bq.url, *args)
  assert status == config_lib.EXIT_USAGE
  assert err.startswith(message), err
  assert len(err.strip().splitlines()) == 1 and not out
  assert not os.path.exists(os.path.join(home, 'monitoring'))


def test_an_unreachable_endpoint_or_no_credentials_is_a_monitor_error(
    tmp_path, monkeypatch):
  import socket
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    dead = f'http://127.0.0.1:{s.getsockname()[1]}'
  start = time.perf_counter()
  with pytest.raises(MonitorError, match=(
      rf'^reading --bq-table {TABLE} from {dead} failed \(.*\); check '
      r'--bq-api-endpoint and the network$')):
    bigquery_logs.read_window(TABLE, api_endpoint=dead, timeout_s=1)
  assert time.perf_counter() - start < 4  # retried for timeout_s in all

  # An https:// endpoint gets real credentials: none can be found here.
  monkeypatch.setenv('GOOGLE_APPLICATION_CREDENTIALS',
                     str(tmp_path / 'missing.json'))
  with pytest.raises(MonitorError, match=(
      r'^no usable Google credentials for BigQuery \(.*missing\.json.*\); '
      r'run `gcloud auth application-default login`')):
    bigquery_logs.read_window(TABLE, api_endpoint='https://127.0.0.1:9')
