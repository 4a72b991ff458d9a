"""A pipeline run killed with SIGKILL during Trainer, then run again.

What a user depends on after a crash (a laptop closed, a node preempted):
the killed run reads "not finished" in the summary and the report (never
"completed"), nothing half-trained is pushed, and the next run resumes from
the cached upstream steps and pushes a model that loads.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from fmnist import cli
from pipeline import configs
from pipeline import pusher
from pipeline import summary

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Enough epochs that Trainer is still training when it is killed.
PIPELINE_ARGS = ['--epochs', '4', '--min-accuracy', '0.0',
                 '--max-accuracy-drop', '1.0']


def _kill_during_trainer(home):
  """Starts `fmnist pipeline run`, SIGKILLs it once Trainer writes logs."""
  proc = subprocess.Popen(
      [sys.executable, '-m', 'fmnist.cli', 'pipeline', 'run', '--home', home]
      + PIPELINE_ARGS, cwd=REPO, stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, start_new_session=True)
  deadline = time.monotonic() + 600
  training = os.path.join(home, 'tfx', 'Trainer', 'model_run', '*', '*')
  while not glob.glob(training):
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
    assert time.monotonic() < deadline, 'Trainer never started'
    time.sleep(0.2)
  time.sleep(1.0)  # inside model.fit
  assert proc.poll() is None, 'the run finished before it could be killed'
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait(60)
  proc.stderr.close()


def test_run_killed_in_trainer_reads_not_finished_and_rerun_resumes(
    tmp_path, capsys):
  home = str(tmp_path / 'home')
  assert cli.main(['ingest', '--home', home, '--train-limit', '1000',
                   '--test-limit', '200']) == 0
  _kill_during_trainer(home)

  cfg = configs.PipelineConfig.from_home(home)
  killed = summary.summarize(cfg)
  assert not killed.finished
  assert killed.outcome == 'not finished (stopped in Trainer)'
  assert killed.pushed_to is None
  serving = os.path.join(home, 'serving_model')
  assert pusher.pushed_versions(serving) == []

  capsys.readouterr()
  assert cli.main(['pipeline', 'run', '--home', home] + PIPELINE_ARGS) == 0
  out = capsys.readouterr().out
  assert ': completed' in out, out
  store = summary.open_store(cfg)
  first, second = summary.run_ids(store)
  assert first == killed.run_id
  rerun = summary.summarize(cfg, second, store)
  states = {c.node_id: c.state for c in rerun.components}
  # Resumed: what finished before the kill is reused, Trainer runs afresh.
  assert states['Transform'] == 'cached' and states['Trainer'] == 'ran', states
  assert rerun.finished and rerun.blessed
  versions = pusher.pushed_versions(serving)
  assert len(versions) == 1
  assert rerun.pushed_to == os.path.join(serving, str(versions[0]))
  tf.saved_model.load(rerun.pushed_to).signatures['serving_default']
  # The killed run still reads as not finished, in the report too.
  assert summary.summarize(cfg, first, store).outcome == (
      'not finished (stopped in Trainer)')
  assert cli.main(['report', '--home', home]) == 0
  with open(os.path.join(home, 'reports', 'index.html')) as f:
    assert 'not finished (stopped in Trainer)' in f.read()
