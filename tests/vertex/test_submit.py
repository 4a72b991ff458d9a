"""`fmnist pipeline run --runner vertex` through the real aiplatform SDK.

The SDK talks REST to a loopback server (fake_vertex) with anonymous
credentials; the assertions are on the requests it actually sent.
"""

import pytest

from vertex_testenv import BUCKET, PROJECT, REGION, RUNNER_SA, vertex_flags
from fmnist import cli

IMAGE_PATH = f'{PROJECT}/fmnist/fmnist-pipeline'



def _run(fake, *extra):
  image = f'{fake.host}/{IMAGE_PATH}:t1'
  fake.known_images.add(f'{IMAGE_PATH}:t1')
  return cli.main(['pipeline', 'run', '--runner', 'vertex',
                   *vertex_flags(image=image), '--api-endpoint',
                   fake.endpoint, '--poll-seconds', '0.01', *extra])


def _creates(fake):
  return [r for r in fake.requests
          if r['method'] == 'POST' and r['path'].endswith('/pipelineJobs')]


def test_submit_sends_the_job_and_waits_for_success(fake_vertex, anonymous,
                                                    capsys):
  fake_vertex.job_states = ['PIPELINE_STATE_PENDING', 'PIPELINE_STATE_RUNNING',
                            'PIPELINE_STATE_RUNNING',
                            'PIPELINE_STATE_SUCCEEDED']
  assert _run(fake_vertex, '--wait', '--label', 'team=ml', '--no-cache') == 0
  (create,) = _creates(fake_vertex)
  assert create['path'] == (
      f'/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs')
  assert create['query']['pipelineJobId'].startswith('fmnist-tfx-')
  body = create['body']
  assert body['displayName'] == 'fmnist-tfx'
  assert body['serviceAccount'] == RUNNER_SA
  assert body['labels'] == {'team': 'ml'}
  assert body['runtimeConfig']['gcsOutputDirectory'] == (
      f'gs://{BUCKET}/pipeline_root/fmnist-tfx')
  # Without --param the job runs with the configured data root.
  assert body['runtimeConfig']['parameters'] == {
      'data_root': {'stringValue': f'gs://{BUCKET}/data'}}
  spec = body['pipelineSpec']
  assert spec['pipelineInfo']['name'] == 'fmnist-tfx'
  assert 'Trainer' in spec['root']['dag']['tasks']
  # --no-cache reaches every task of the submitted spec.
  for name, task in spec['root']['dag']['tasks'].items():
    assert task['cachingOptions'] == {} or task['cachingOptions'].get(
        'enableCache') is False, name
  # The image was checked before submitting (Docker Registry v2 API).
  assert fake_vertex.requests[0]['method'] == 'HEAD'
  assert fake_vertex.requests[0]['path'] == f'/v2/{IMAGE_PATH}/manifests/t1'
  gets = [r for r in fake_vertex.requests if r['method'] == 'GET' and
          '/pipelineJobs/' in r['path']]
  assert len(gets) >= 4
  out = capsys.readouterr().out
  assert 'submitted projects/' in out
  assert out.index('PIPELINE_STATE_RUNNING') < out.index(
      'PIPELINE_STATE_SUCCEEDED')


def test_wait_exits_non_zero_when_the_job_fails(fake_vertex, anonymous,
                                                capsys):
  fake_vertex.job_states = ['PIPELINE_STATE_RUNNING', 'PIPELINE_STATE_FAILED']
  fake_vertex.job_error = 'DataGate: span 3 drifted'
  assert _run(fake_vertex, '--wait') == 1
  captured = capsys.readouterr()
  assert 'PIPELINE_STATE_FAILED' in captured.out
  assert 'DataGate: span 3 drifted' in captured.err


def test_without_wait_returns_after_submitting(fake_vertex, anonymous):
  fake_vertex.job_states = ['PIPELINE_STATE_FAILED']  # never looked at
  assert _run(fake_vertex) == 0
  assert len(_creates(fake_vertex)) == 1
  assert fake_vertex.job_states == ['PIPELINE_STATE_FAILED']
  body = _creates(fake_vertex)[0]['body']
  # Caching is on by default: no task was switched off.
  assert all(t.get('cachingOptions', {}).get('enableCache', True) is not False
             for t in body['pipelineSpec']['root']['dag']['tasks'].values())


def test_param_overrides_the_data_root_of_the_job(fake_vertex, anonymous):
  assert _run(fake_vertex, '--param', 'data_root=gs://other-bucket/data2') == 0
  (create,) = _creates(fake_vertex)
  body = create['body']
  # The SDK merged the override into the compiled spec's runtimeConfig.
  assert body['runtimeConfig']['parameters'] == {
      'data_root': {'stringValue': 'gs://other-bucket/data2'}}
  spec = body['pipelineSpec']
  assert spec['root']['inputDefinitions']['parameters'] == {
      'data_root': {'type': 'STRING'}}
  assert spec['root']['dag']['tasks']['ImportExampleGen']['inputs'][
      'parameters']['input_base'] == {'componentInputParameter': 'data_root'}


@pytest.mark.parametrize('param, message', [
    ('data_roots=gs://b/d', '--param (or FMNIST_PARAMS): unknown runtime '
     'parameter(s) data_roots; known: data_root'),
    ('data_root=/local/data', 'must be a gs:// path'),
    ('data_root', "parameter 'data_root' is not KEY=VALUE"),
])
def test_bad_param_stops_before_anything(fake_vertex, anonymous, capsys, param,
                                         message):
  assert _run(fake_vertex, '--param', param) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and message in err
  assert not fake_vertex.requests  # no image check, no submission


def test_unknown_param_from_environment(fake_vertex, anonymous, monkeypatch,
                                        capsys):
  monkeypatch.setenv('FMNIST_PARAMS', 'data_root=gs://b/d,epochs=3')
  assert _run(fake_vertex) == 2
  assert 'unknown runtime parameter(s) epochs; known: data_root' in (
      capsys.readouterr().err)
  assert not fake_vertex.requests


def test_rejected_submission_is_a_clear_error(fake_vertex, anonymous, capsys):
  fake_vertex.reject_create = (400, 'Service account pipeline-runner@x does '
                               'not exist.')
  assert _run(fake_vertex, '--wait') == 2
  err = capsys.readouterr().err
  assert err.startswith('error: Vertex AI rejected the pipeline job')
  assert 'does not exist' in err and '--service-account' in err


def test_missing_image_stops_before_submitting(fake_vertex, anonymous, capsys):
  image = f'{fake_vertex.host}/{IMAGE_PATH}:not-pushed'
  assert cli.main(['pipeline', 'run', '--runner', 'vertex',
                   *vertex_flags(image=image), '--api-endpoint',
                   fake_vertex.endpoint]) == 2
  assert 'does not exist' in capsys.readouterr().err
  assert not _creates(fake_vertex)


def test_missing_credentials_stop_before_anything(fake_vertex, monkeypatch,
                                                  tmp_path, capsys):
  monkeypatch.setenv('GOOGLE_APPLICATION_CREDENTIALS',
                     str(tmp_path / 'missing.json'))
  assert _run(fake_vertex) == 2
  assert 'no Google Cloud credentials' in capsys.readouterr().err
  assert not fake_vertex.requests

