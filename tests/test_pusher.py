"""Pushes land whole, versions increase, identical models are not re-pushed."""

import os

from pipeline import pusher


def _model(path, payload=b'model', fingerprint=b'fp-1'):
  os.makedirs(os.path.join(path, 'variables'), exist_ok=True)
  with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
    f.write(payload)
  with open(os.path.join(path, pusher.FINGERPRINT_FILE), 'wb') as f:
    f.write(fingerprint)
  return path


def test_push_creates_a_complete_numeric_version(tmp_path):
  base = str(tmp_path / 'serving')
  version, pushed = pusher.push_model(_model(str(tmp_path / 'm1')), base)
  assert pushed
  assert pusher.pushed_versions(base) == [version]
  assert os.listdir(base) == [str(version)]  # no staging directory left
  with open(os.path.join(base, str(version), 'saved_model.pb'), 'rb') as f:
    assert f.read() == b'model'


def test_new_model_gets_a_higher_version_and_keeps_the_old(tmp_path):
  base = str(tmp_path / 'serving')
  v1, _ = pusher.push_model(_model(str(tmp_path / 'm1')), base)
  v2, pushed = pusher.push_model(
      _model(str(tmp_path / 'm2'), b'other', b'fp-2'), base)
  assert pushed and v2 > v1
  assert pusher.pushed_versions(base) == [v1, v2]


def test_identical_model_is_not_pushed_twice(tmp_path):
  base = str(tmp_path / 'serving')
  v1, _ = pusher.push_model(_model(str(tmp_path / 'm1')), base)
  v2, pushed = pusher.push_model(_model(str(tmp_path / 'm1b')), base)
  assert (v2, pushed) == (v1, False)
  assert pusher.pushed_versions(base) == [v1]


def test_half_written_versions_are_invisible(tmp_path):
  base = tmp_path / 'serving'
  (base / '.staging-5').mkdir(parents=True)
  (base / '7').mkdir()  # no saved_model.pb yet
  assert pusher.pushed_versions(str(base)) == []
