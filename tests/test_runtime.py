"""oneDNN is chosen per process before TensorFlow is imported (issue 10)."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ('from models import runtime; v = runtime.prefer_onednn({enabled}); '
         'import tensorflow; '
         'from tensorflow.python.util import _pywrap_util_port as p; '
         'print(v, p.IsMklEnabled(), runtime.machine().split()[-1])')


@pytest.mark.parametrize('enabled,preset,expected', [
    (True, None, '1 True on'),     # training: on, even where TF leaves it off
    (False, None, '0 False off'),  # serving: off, even where TF turns it on
    (True, '0', '0 False off'),    # the user's own setting wins
])
def test_prefer_onednn_decides_what_tensorflow_uses(enabled, preset,
                                                    expected):
  env = {k: v for k, v in os.environ.items() if k != 'TF_ENABLE_ONEDNN_OPTS'}
  if preset is not None:
    env['TF_ENABLE_ONEDNN_OPTS'] = preset
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  out = subprocess.run(
      [sys.executable, '-c', PROBE.format(enabled=enabled)], cwd=REPO,
      env=env, capture_output=True, text=True, check=True).stdout
  assert out.split('\n')[-2] == expected


def test_too_late_once_tensorflow_is_imported(monkeypatch):
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  from models import runtime  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv('TF_ENABLE_ONEDNN_OPTS', raising=False)
  assert runtime.prefer_onednn(True) == 'unchanged'
  assert 'TF_ENABLE_ONEDNN_OPTS' not in os.environ


def test_commands_import_no_tensorflow_before_they_run():
  # Otherwise `fmnist pipeline run` / `fmnist serve` could not choose.
  out = subprocess.run(
      [sys.executable, '-c', 'import sys, fmnist.cli; '
       'print("tensorflow" in sys.modules)'], cwd=REPO, capture_output=True,
      text=True, check=True).stdout
  assert out.strip() == 'False'


# Prints TF_ENABLE_ONEDNN_OPTS at the moment `tensorflow` is first imported,
# then stops: what follows does not matter.
SPY = '''
import os, sys
class Spy:
  def find_spec(self, name, path=None, target=None):
    if name == 'tensorflow':
      print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), flush=True)
      os._exit(0)
sys.meta_path.insert(0, Spy())
sys.path.insert(0, 'benchmarks')
import full_run
'''


def test_the_full_run_benchmark_trains_as_fmnist_run_does():
  # Set after TensorFlow's import, oneDNN is only half on and a step is
  # ~1.7x slower on an AVX2-only CPU: the benchmark would time something
  # that `make run` does not do (it did, until 2026-12-07).
  env = {k: v for k, v in os.environ.items() if k != 'TF_ENABLE_ONEDNN_OPTS'}
  out = subprocess.run([sys.executable, '-c', SPY], cwd=REPO, env=env,
                       capture_output=True, text=True, check=True).stdout
  assert out.strip() == '1'
