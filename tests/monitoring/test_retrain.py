"""The retraining trigger: the same entry points as `fmnist pipeline run`.

Locally the seam is `pipeline.local_runner.run_local(cfg)`, which `fmnist
pipeline run` calls with the config it built (a real run takes minutes;
tests/test_e2e.py runs it). On Vertex the real aiplatform SDK submits to the
loopback fake. The library function `retrain.start` is also called directly
with a typed config, without any command line.
"""

import os

from google.auth import credentials as ga_credentials
import pytest

from fake_vertex import FakeVertex  # pylint: disable=g-bad-import-order
from monitor_testenv import summaries, write_logs  # pylint: disable=g-bad-import-order
from vertex_testenv import PROJECT, REGION, vertex_flags  # pylint: disable=g-bad-import-order
from fmnist import cli
from monitoring import config as config_lib
from monitoring import retrain
from pipeline import configs as pipeline_configs
from pipeline import local_runner
from pipeline import summary as summary_lib
from pipeline import validation
from pipeline import vertex_config
from pipeline import vertex_submit

N = 600
KNOBS = ['--epochs', '2', '--model-param', 'convs_per_block=1']


@pytest.fixture
def drifted(home, test_images):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), 255 - images[:N], labels[:N])
  return home


@pytest.fixture
def local_runs(monkeypatch):
  """Replaces the local runner entry point; records the configs it gets."""
  configs = []

  def run_local(cfg):
    configs.append(cfg)
    return summary_lib.RunSummary(
        run_id='run-1', span=2, components=[], metrics=None, blessed=True,
        pushed_to=None)
  monkeypatch.setattr(local_runner, 'run_local', run_local)
  return configs


def test_drift_starts_the_same_local_run_as_pipeline_run(drifted, monitor,
                                                         local_runs):
  os.makedirs(os.path.join(drifted, 'data', 'span-2'))  # newly labeled data
  status, out, _ = monitor('--retrain-on-drift', *KNOBS)
  assert status == config_lib.EXIT_UNHEALTHY
  assert ('retraining: local pipeline run on span 2 finished (blessed: '
          'True)') in out
  assert cli.main(['pipeline', 'run', '--home', drifted, *KNOBS]) == 0
  from_monitor, from_pipeline_run = local_runs
  assert from_monitor == from_pipeline_run
  assert from_monitor.model.epochs == 2
  assert from_monitor.model.convs_per_block == 1
  assert from_monitor.data_root == os.path.join(drifted, 'data')
  (summary,) = summaries(drifted)
  assert summary['retraining']['status'] == 'started'


def test_without_new_labeled_data_nothing_is_retrained(drifted, monitor,
                                                       local_runs):
  status, out, _ = monitor('--retrain-on-drift')
  assert status == config_lib.EXIT_UNHEALTHY
  assert not local_runs
  assert ('retraining: not started: the newest span (1) is the '
          'one the served model was trained on') in out
  (summary,) = summaries(drifted)
  assert summary['retraining']['status'] == 'not started'


def test_healthy_traffic_never_retrains(home, monitor, local_runs,
                                        test_images):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), images[:N], labels[:N])
  os.makedirs(os.path.join(home, 'data', 'span-2'))
  assert monitor('--retrain-on-drift')[0] == config_lib.EXIT_HEALTHY
  assert not local_runs


def test_a_blocked_retraining_run_is_exit_4(drifted, monitor, monkeypatch):
  os.makedirs(os.path.join(drifted, 'data', 'span-2'))

  def blocked(cfg):
    del cfg
    raise validation.DataValidationError(
        'span 2 was blocked before training: 1 data anomaly')
  monkeypatch.setattr(local_runner, 'run_local', blocked)
  status, _, err = monitor('--retrain-on-drift')
  assert status == config_lib.EXIT_RETRAIN_FAILED
  assert err.strip().endswith('error: retraining failed: span 2 was blocked '
                              'before training: 1 data anomaly')
  (summary,) = summaries(drifted)
  assert summary['retraining']['status'] == 'failed'
  assert os.path.isfile(os.path.join(drifted, 'monitoring', summary['stamp'],
                                     'report.html'))


def test_bad_retraining_flags_stop_before_monitoring(drifted, monitor,
                                                     local_runs):
  status, _, err = monitor('--retrain-on-drift', '--model-param', 'convs=1')
  assert status == config_lib.EXIT_USAGE
  assert err.startswith("error: --model-param: unknown key 'convs'")
  assert not os.path.exists(os.path.join(drifted, 'monitoring'))
  assert not local_runs


@pytest.fixture
def fake_vertex(monkeypatch):
  monkeypatch.setattr(vertex_submit, 'default_credentials',
                      ga_credentials.AnonymousCredentials)
  with FakeVertex() as fake:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', fake.endpoint)
    yield fake


def test_drift_submits_a_vertex_pipeline_job(drifted, monitor, fake_vertex):
  image_path = f'{PROJECT}/fmnist/fmnist-pipeline'
  fake_vertex.known_images.add(f'{image_path}:t1')
  status, out, err = monitor(
      '--retrain-on-drift', '--runner', 'vertex',
      *vertex_flags(image=f'{fake_vertex.host}/{image_path}:t1'),
      '--api-endpoint', fake_vertex.endpoint)
  assert status == config_lib.EXIT_UNHEALTHY, err
  (create,) = [r for r in fake_vertex.requests if r['method'] == 'POST' and
               r['path'].endswith('/pipelineJobs')]
  assert create['path'] == (
      f'/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs')
  assert create['body']['displayName'] == 'fmnist-tfx'
  assert 'Trainer' in create['body']['pipelineSpec']['root']['dag']['tasks']
  assert 'submitted projects/' in out
  assert 'retraining: Vertex AI pipeline job submitted' in out
  (summary,) = summaries(drifted)
  job = summary['retraining'].pop('job')
  assert job.startswith(f'projects/{PROJECT}/locations/{REGION}/pipelineJobs/')
  assert summary['retraining'] == {
      'runner': 'vertex', 'status': 'started',
      'message': 'Vertex AI pipeline job submitted'}


def test_incomplete_vertex_flags_stop_before_monitoring(drifted, monitor,
                                                        fake_vertex):
  status, _, err = monitor('--retrain-on-drift', '--runner', 'vertex',
                           *vertex_flags(project=None))
  assert status == config_lib.EXIT_USAGE
  assert err.startswith('error: --project (or FMNIST_PROJECT) is required')
  assert not os.path.exists(os.path.join(drifted, 'monitoring'))
  assert not fake_vertex.requests


def test_start_runs_a_typed_local_config_without_a_command_line(tmp_path,
                                                               local_runs):
  home = str(tmp_path)
  for span in (1, 2):
    os.makedirs(os.path.join(home, 'data', f'span-{span}'))
  cfg = retrain.RetrainConfig(pipeline_configs.PipelineConfig.from_home(home))
  assert cfg.runner == retrain.LOCAL and retrain.credentials_for(cfg) is None
  assert retrain.start(cfg, baseline_span=2).status == 'not started'
  assert not local_runs
  started = retrain.start(cfg, baseline_span=1)
  assert started.status == 'started' and local_runs == [cfg.pipeline]


def test_start_submits_a_typed_vertex_config_and_waits(fake_vertex):
  image_path = f'{PROJECT}/fmnist/fmnist-pipeline'
  fake_vertex.known_images.add(f'{image_path}:t1')
  fake_vertex.job_states = ['PIPELINE_STATE_RUNNING', 'PIPELINE_STATE_FAILED']
  fake_vertex.job_error = 'Trainer: out of memory'
  vertex = vertex_config.VertexConfig(
      project=PROJECT, region=REGION, bucket='fmnist-test-bucket',
      image=f'{fake_vertex.host}/{image_path}:t1',
      api_endpoint=fake_vertex.endpoint, wait=True, poll_seconds=0.01)
  cfg = retrain.RetrainConfig(vertex_config.for_vertex(
      pipeline_configs.PipelineConfig.from_home('/tmp/unused'), vertex))
  assert cfg.runner == retrain.VERTEX
  outcome = retrain.start(cfg, baseline_span=1,
                          credentials=retrain.credentials_for(cfg))
  assert outcome.failed
  assert outcome.message == ('the Vertex AI pipeline job ended '
                             'PIPELINE_STATE_FAILED: Trainer: out of memory')
  assert outcome.job.startswith(f'projects/{PROJECT}/')
