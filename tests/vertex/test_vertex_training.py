"""The Trainer's Vertex Training executor, against the loopback Vertex fake.

TFX's own extension sends CustomJobs to `{region}-aiplatform.googleapis.com`
whatever `--api-endpoint` says; pipeline/vertex_training.py honours it. Here
the real GAPIC client (REST, credentials refreshed at the fake's token
endpoint) creates a CustomJob, the fake runs its container command, and the
executor's wait ends with the job's outcome.
"""

import json

import pytest

from pipeline import vertex_config
from pipeline import vertex_training
from vertex_testenv import IMAGE, PROJECT, REGION  # pylint: disable=g-bad-import-order


def _job(command):
  return {'display_name': 'fmnist-test-job', 'job_spec': {
      'worker_pool_specs': [{
          'machine_spec': {'machine_type': 'n1-standard-4'},
          'replica_count': 1,
          'container_spec': {'image_uri': IMAGE, 'command': command}}]}}


@pytest.fixture
def client(fake_vertex, loopback_adc, monkeypatch):
  del loopback_adc
  monkeypatch.setattr(vertex_training, 'POLL_SECONDS', 0.05)
  return vertex_training.JobClient(REGION, fake_vertex.url)


def test_custom_job_goes_to_the_spec_endpoint_and_is_waited_for(
    client, fake_vertex):
  client.launch_job(PROJECT, _job(['python', '-c', 'print("trained here")']))
  vertex_training._wait(client)  # pylint: disable=protected-access
  (create,) = [r for r in fake_vertex.requests if r['method'] == 'POST'
               and r['path'].endswith('/customJobs')]
  assert create['path'] == (f'/v1/projects/{PROJECT}/locations/{REGION}/'
                            'customJobs')
  # With the token google-auth fetched from the credentials' token_url.
  headers = {k.lower(): v for k, v in create['headers'].items()}
  assert headers['authorization'] == 'Bearer loopback-token'
  (pool,) = create['body']['jobSpec']['workerPoolSpecs']
  assert pool['containerSpec']['imageUri'] == IMAGE
  assert list(fake_vertex.custom_job_logs.values()) == ['trained here\n']


def test_a_failed_custom_job_fails_the_trainer_with_its_error(client):
  client.launch_job(PROJECT, _job(
      ['python', '-c', 'import sys; print("out of memory"); sys.exit(3)']))
  with pytest.raises(RuntimeError) as e:
    vertex_training._wait(client)  # pylint: disable=protected-access
  assert 'JOB_STATE_FAILED' in str(e.value)
  assert 'non-zero status of 3' in str(e.value)
  assert 'out of memory' in str(e.value)


def test_compiled_trainer_carries_the_endpoint_to_training_and_tracking(
    tmp_path):
  from conftest import _compile  # pylint: disable=g-import-not-at-top
  spec = _compile(str(tmp_path), '--no-dataflow', '--api-endpoint',
                  'us-central1-aiplatform-fmnist.p.googleapis.com')
  pipeline_spec = spec['pipelineSpec']
  trainer = pipeline_spec['root']['dag']['tasks']['Trainer']
  label = pipeline_spec['components'][trainer['componentRef']['name']][
      'executorLabel']
  args = pipeline_spec['deploymentSpec']['executors'][label]['container'][
      'args']
  assert args[args.index('--executor_class_path') + 1] == (
      'pipeline.vertex_training.Executor')
  config = json.loads(trainer['inputs']['parameters']['custom_config'][
      'runtimeValue']['constantValue']['stringValue'])
  assert config[vertex_config.TRAINING_API_ENDPOINT_KEY] == (
      'us-central1-aiplatform-fmnist.p.googleapis.com')
  assert config['tracking']['api_endpoint'] == (
      'us-central1-aiplatform-fmnist.p.googleapis.com')
  assert 'api_transport' not in config['tracking']  # a host: gRPC, as TFX
