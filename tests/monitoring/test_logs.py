"""Reading the proxy's request logs: rotated and live files, bad rows,
windows."""

import datetime
import json
import os

import pytest

from monitor_testenv import VERSION, write_logs  # pylint: disable=g-bad-import-order
from monitoring import logs
from monitoring.config import MonitorError

UTC = datetime.timezone.utc


def test_rows_written_by_the_proxy_are_read_back(tmp_path, test_images):
  images, labels = test_images
  write_logs(tmp_path, images[:40], labels[:40], timestamp=1_700_000_000.25)
  # A row the proxy is still writing (no newline yet) is neither read nor
  # counted as unreadable.
  (tmp_path / 'requests-x-1-9.jsonl.inprogress').write_text('{"broken')
  window = logs.read_window(str(tmp_path))
  assert len(window) == 40 and window.skipped == 0
  first = window.instances[0]
  assert first.pixels == images[0].reshape(-1).tolist()
  assert first.class_id == labels[0]
  assert first.model_version == VERSION
  assert first.timestamp == datetime.datetime(2023, 11, 14, 22, 13, 20,
                                              250000, UTC)
  assert window.versions() == {VERSION: 40}


def test_a_live_file_is_read_to_its_last_complete_row(tmp_path, test_images,
                                                     monkeypatch):
  images, labels = test_images
  write_logs(tmp_path, images[:30], labels[:30], close=False)
  (live,) = os.listdir(tmp_path)
  with open(tmp_path / live, 'a', encoding='utf-8') as f:
    f.write('{"timestamp": "2026-01-01T00:00')
  window = logs.read_window(str(tmp_path))
  assert len(window) == 30 and window.skipped == 0
  assert window.files == (str(tmp_path / live),)
  # Rotated between listing and reading: read once, under its new name.
  listed = logs.log_files(str(tmp_path))
  os.replace(tmp_path / live, tmp_path / live.replace('.inprogress', ''))
  monkeypatch.setattr(logs, 'log_files', lambda _: listed)
  window = logs.read_window(str(tmp_path))
  assert len(window) == 30


def test_unreadable_rows_are_skipped_and_named_odd_instances_kept(tmp_path):
  good = {'timestamp': '2026-01-01T00:00:00.000Z', 'model_version': '7',
          'pixels': [0] * 784, 'class_id': 3}
  rows = [
      json.dumps(good),
      json.dumps(good)[:100],                         # truncated line
      json.dumps(dict(good, pixels='0,0,0')),         # not a list
      json.dumps(dict(good, pixels=[0.5] * 784)),     # not integers
      json.dumps(dict(good, class_id='Dress')),
      json.dumps({k: v for k, v in good.items() if k != 'timestamp'}),
      '[1, 2, 3]',
      '',                                             # blank: ignored
      json.dumps(dict(good, pixels=[300] * 784)),     # kept: TFDV's domain
      json.dumps(dict(good, pixels=[0] * 100)),       # kept: TFDV's shape
      json.dumps(dict(good, class_id=None)),          # kept: missing class
  ]
  (tmp_path / 'requests-a.jsonl').write_text('\n'.join(rows) + '\n')
  window = logs.read_window(str(tmp_path))
  assert len(window) == 4
  assert [len(i.pixels) for i in window.instances] == [784, 784, 100, 784]
  assert window.skipped == 6
  assert window.skipped_examples[0].startswith('requests-a.jsonl:2: not JSON')
  assert "requests-a.jsonl:3: 'pixels' is not a list of integers" in (
      window.skipped_examples)
  assert "requests-a.jsonl:5: 'class_id' is not an integer" in (
      window.skipped_examples)


def _log_at(directory, name, images, labels, when):
  sub = directory / name
  write_logs(sub, images, labels, timestamp=when.timestamp())
  for path in sub.iterdir():
    target = directory / f'{name}-{path.name}'
    path.rename(target)
    os.utime(target, (when.timestamp(), when.timestamp()))


def test_since_and_last_select_the_newest_instances(tmp_path, test_images):
  images, labels = test_images
  t0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
  for hour in range(3):  # three files, an hour apart, 20 instances each
    _log_at(tmp_path, f'h{hour}', images[20 * hour:20 * (hour + 1)],
            labels[20 * hour:20 * (hour + 1)],
            t0 + datetime.timedelta(hours=hour))
  since = t0 + datetime.timedelta(minutes=30)
  window = logs.read_window(str(tmp_path), since=since)
  assert len(window) == 40 and len(window.files) == 2
  assert window.first == t0 + datetime.timedelta(hours=1)
  window = logs.read_window(str(tmp_path), last=25)
  assert len(window) == 25
  # The newest 25: all of the last file, 5 of the one before; the oldest
  # file is not even opened.
  assert len(window.files) == 2
  assert window.instances[-1].pixels == images[59].reshape(-1).tolist()
  assert window.instances[0].pixels == images[35].reshape(-1).tolist()


def test_since_accepts_durations_and_times():
  now = datetime.datetime(2026, 1, 2, 12, tzinfo=UTC)
  assert logs.parse_since('24h', now) == datetime.datetime(
      2026, 1, 1, 12, tzinfo=UTC)
  assert logs.parse_since('90m', now) == datetime.datetime(
      2026, 1, 2, 10, 30, tzinfo=UTC)
  assert logs.parse_since('2026-01-01T06:00:00Z', now) == (
      datetime.datetime(2026, 1, 1, 6, tzinfo=UTC))
  assert logs.parse_since('2026-01-01', now) == datetime.datetime(
      2026, 1, 1, tzinfo=UTC)
  with pytest.raises(MonitorError, match='expected a duration like 24h'):
    logs.parse_since('yesterday', now)
