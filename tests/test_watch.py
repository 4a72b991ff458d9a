"""`fmnist watch`: a complete, valid set of IDX files becomes one span, once.

Small IDX files (a few images) keep it fast; `--no-run` leaves the pipeline
out here (tests/vertex/test_trigger.py follows a set through to a submitted
Vertex pipeline job, the path `--runner vertex` takes).
"""

import dataclasses
import gzip
import http.server
import json
import os
import struct
import urllib.parse

import numpy as np
import pytest

from fmnist import cli
import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order
from pipeline import ingest
from pipeline import watch

FILES = ingest.TRAIN_FILES + ingest.TEST_FILES


def _idx_bytes(n, seed):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, n, dtype=np.uint8)
  return (gzip.compress(struct.pack('>IIII', ingest.IMAGES_MAGIC, n, 28, 28) +
                        images.tobytes()),
          gzip.compress(struct.pack('>II', ingest.LABELS_MAGIC, n) +
                        labels.tobytes()))


def _upload(directory, names=FILES, seed=0):
  """Writes the named files of one IDX set (train 30, test 10 images)."""
  os.makedirs(directory, exist_ok=True)
  train, test = _idx_bytes(30, seed), _idx_bytes(10, seed + 1)
  data = dict(zip(FILES, train + test))
  for name in names:
    with open(os.path.join(directory, name), 'wb') as f:
      f.write(data[name])


def _spans(home):
  return ingest.existing_spans(os.path.join(home, 'data'))


def _watch(capsys, source, home, *extra):
  code = cli.main(['watch', str(source), '--home', str(home), '--once',
                   '--no-run', '--settle', '0', *extra])
  out, err = capsys.readouterr()
  return code, out, err


def test_a_half_uploaded_set_is_not_a_span(tmp_path, capsys):
  _upload(tmp_path / 'in', FILES[:3])
  code, out, _ = _watch(capsys, tmp_path / 'in', tmp_path / 'home')
  assert code == 0 and out.startswith('incomplete: waiting for all four')
  assert _spans(tmp_path / 'home') == []


def test_a_complete_set_becomes_one_span_and_a_repeat_does_nothing(
    tmp_path, capsys):
  _upload(tmp_path / 'in')
  code, out, _ = _watch(capsys, tmp_path / 'in', tmp_path / 'home')
  assert code == 0 and out.startswith('ingested: new span ')
  assert _spans(tmp_path / 'home') == [1]
  span = tmp_path / 'home' / 'data' / 'span-1'
  assert sum(1 for _ in ingest.iter_span_examples(str(span), 'test')) == 10
  # The same event again (a retried trigger, the next poll): nothing new.
  code, out, _ = _watch(capsys, tmp_path / 'in', tmp_path / 'home')
  assert code == 0 and out.startswith('already ingested: these files were '
                                      f'ingested as {span}')
  assert _spans(tmp_path / 'home') == [1]
  # New files are new data: the next span.
  _upload(tmp_path / 'in', seed=7)
  code, out, _ = _watch(capsys, tmp_path / 'in', tmp_path / 'home')
  assert out.startswith('ingested') and _spans(tmp_path / 'home') == [1, 2]


def test_a_corrupt_file_is_a_clear_error_and_no_span(tmp_path, capsys):
  _upload(tmp_path / 'in')
  path = tmp_path / 'in' / FILES[0]
  raw = gzip.decompress(path.read_bytes())
  path.write_bytes(gzip.compress(raw[:-784]))  # one image short
  code, out, err = _watch(capsys, tmp_path / 'in', tmp_path / 'home')
  assert code == 2 and out == ''
  assert err.startswith('error: ') and 'truncated' in err
  assert len(err.strip().splitlines()) == 1
  assert _spans(tmp_path / 'home') == []
  # The claim was released: the fixed upload is ingested.
  _upload(tmp_path / 'in')
  code, out, _ = _watch(capsys, tmp_path / 'in', tmp_path / 'home')
  assert out.startswith('ingested') and _spans(tmp_path / 'home') == [1]


def _cfg(tmp_path, **kw):
  home = tmp_path / 'home'
  return watch.WatchConfig(
      source_dir=str(tmp_path / 'in'), state_dir=str(home / 'watch'),
      ingest=ingest.IngestConfig(source_dir='', output_dir=str(home / 'data')),
      **kw)


def test_a_file_still_being_written_waits(tmp_path):
  _upload(tmp_path / 'in')
  growing = tmp_path / 'in' / FILES[2]
  full = growing.read_bytes()
  growing.write_bytes(full[:len(full) // 2])

  def copy_goes_on(seconds):
    assert seconds == 5.0
    growing.write_bytes(full)

  event = watch.check(_cfg(tmp_path), sleep=copy_goes_on)
  assert event.status == watch.UNSTABLE
  assert _spans(tmp_path / 'home') == []
  assert watch.check(_cfg(tmp_path), sleep=lambda s: None).status == (
      watch.INGESTED)


def test_a_marker_file_instead_of_waiting(tmp_path):
  _upload(tmp_path / 'in')
  cfg = _cfg(tmp_path, marker='_SUCCESS')
  never = lambda s: pytest.fail('no settle wait with a marker')
  assert watch.check(cfg, sleep=never).detail == 'waiting for the marker ' \
      '_SUCCESS'
  (tmp_path / 'in' / '_SUCCESS').write_text('')
  assert watch.check(cfg, sleep=never).status == watch.INGESTED


def test_polling_reports_each_change_once(tmp_path):
  _upload(tmp_path / 'in', FILES[:2])
  events, sleeps = [], []

  def sleep(seconds):  # the next file lands while the watcher sleeps
    sleeps.append(seconds)
    if len(sleeps) == 1:
      _upload(tmp_path / 'in')

  watch.watch(_cfg(tmp_path, interval_seconds=7), events.append, sleep=sleep,
              looks=5)
  assert [e.status for e in events] == [
      watch.INCOMPLETE, watch.UNSTABLE, watch.INGESTED, watch.SEEN]
  assert sleeps == [7] * 4  # sizes from the last look, no extra settle wait
  assert _spans(tmp_path / 'home') == [1]


def test_polling_reports_a_bad_set_and_takes_the_fixed_one(tmp_path):
  _upload(tmp_path / 'in')
  (tmp_path / 'in' / FILES[1]).write_bytes(b'not gzip, not idx')
  events = []

  def sleep(seconds):
    del seconds
    if events[-1].status == watch.REJECTED:  # the fixed upload comes
      _upload(tmp_path / 'in')

  watch.watch(_cfg(tmp_path), events.append, sleep=sleep, looks=4)
  assert [e.status for e in events] == [
      watch.UNSTABLE, watch.REJECTED, watch.UNSTABLE, watch.INGESTED]
  assert 'is not an IDX1 label file' in events[1].detail
  assert _spans(tmp_path / 'home') == [1]


def test_two_watchers_racing_ingest_once(tmp_path):
  _upload(tmp_path / 'in')
  cfg = _cfg(tmp_path)
  first = watch.check(cfg, previous_sizes=watch._sizes(watch._files(  # pylint: disable=protected-access
      cfg.source_dir)))
  record = os.path.join(cfg.state_dir, watch.RECORD_DIR,
                        f'{first.fingerprint}.json')
  assert first.status == watch.INGESTED and os.path.exists(record)
  # A second event that got past the size check claims the same record.
  assert not watch._claim(record, {})  # pylint: disable=protected-access
  # A look killed half way leaves its claim: the next look says what to do.
  with open(record, 'w', encoding='utf-8') as f:
    json.dump({'state': 'ingesting', 'started': 0}, f)
  event = watch.check(cfg, sleep=lambda s: None)
  assert event.status == watch.SEEN and f'delete {record}' in event.detail


def test_bad_settings(tmp_path, capsys):
  with pytest.raises(Exception, match='--interval must be positive'):
    dataclasses.replace(_cfg(tmp_path), interval_seconds=0)
  code, _, err = _watch(capsys, tmp_path, tmp_path / 'h', '--marker', '../x')
  assert code == 2 and "--marker '../x' must be a file name" in err
  code, _, err = _watch(capsys, tmp_path / 'nowhere', tmp_path / 'h')
  assert code == 2 and err == f'error: {tmp_path / "nowhere"} is not a ' \
      'directory\n'


class _FakeGcs(loopback.Loopback):
  """Cloud Storage's JSON upload API, with its `ifGenerationMatch` check."""

  def __init__(self):
    self.objects, self.requests = {}, []
    fake = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        del args

      def do_POST(self):  # pylint: disable=invalid-name
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        fake.requests.append((url.path, query))
        bucket = url.path.split('/')[5]
        name = json.loads(body.split(b'\r\n\r\n', 2)[1].split(b'\r\n')[0])[
            'name']
        status, reply = 200, {'bucket': bucket, 'name': name,
                              'generation': '1'}
        if query.get('ifGenerationMatch') == '0' and (
            (bucket, name) in fake.objects):
          status, reply = 412, {'error': {'code': 412, 'message':
                                          'conditionNotMet'}}
        else:
          fake.objects[(bucket, name)] = body
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    super().__init__(Handler)


def test_a_gcs_record_is_claimed_once(monkeypatch):
  """On Cloud Storage the claim is a create with ifGenerationMatch=0."""
  with _FakeGcs() as gcs:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', gcs.url)
    path = 'gs://my-bucket/watch/ingested/abc.json'
    assert watch._claim(path, {'state': 'ingesting'})  # pylint: disable=protected-access
    assert not watch._claim(path, {'state': 'ingesting'})  # pylint: disable=protected-access
  assert [q.get('ifGenerationMatch') for _, q in gcs.requests] == ['0', '0']
  assert list(gcs.objects) == [('my-bucket', 'watch/ingested/abc.json')]
