"""Shared fixtures: flags and compiled specs (tests/conftest.py clears
FMNIST_* for every test)."""

import json
import os

import pytest

from fake_vertex import FakeVertex  # pylint: disable=g-bad-import-order

from vertex_testenv import vertex_flags  # pylint: disable=g-bad-import-order


def _compile(tmp_dir, *extra):
  from fmnist import cli
  out = os.path.join(tmp_dir, 'spec.json')
  with pytest.MonkeyPatch.context() as mp:  # session scope: clean env here too
    for name in list(os.environ):
      if name.startswith('FMNIST_'):
        mp.delenv(name)
    assert cli.main(['pipeline', 'compile', *vertex_flags(), *extra,
                     '--output', out]) == 0
  with open(out, encoding='utf-8') as f:
    return json.load(f)


@pytest.fixture(scope='session')
def spec(tmp_path_factory):
  """The default Vertex spec: Dataflow + Vertex Training, no Endpoint."""
  return _compile(tmp_path_factory.mktemp('spec'), '--label', 'team=ml')


@pytest.fixture(scope='session')
def spec_gpu_endpoint(tmp_path_factory):
  return _compile(tmp_path_factory.mktemp('spec_gpu'),
                  '--accelerator-type', 'NVIDIA_TESLA_T4',
                  '--accelerator-count', '1',
                  '--endpoint', 'fmnist-endpoint',
                  '--prediction-image',
                  'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest')


@pytest.fixture(scope='session')
def spec_in_pipeline(tmp_path_factory):
  """Beam and training inside the pipeline steps (no Dataflow/Training)."""
  return _compile(tmp_path_factory.mktemp('spec_plain'), '--no-dataflow',
                  '--no-vertex-training')


@pytest.fixture
def fake_vertex(monkeypatch):
  with FakeVertex() as fake:
    # PipelineJob.submit checks the pipeline root's bucket with the GCS
    # client, which honours this variable.
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', fake.endpoint)
    yield fake


@pytest.fixture
def anonymous(monkeypatch):
  """The commands' credentials are anonymous ones (the fake checks none)."""
  from google.auth import credentials as ga_credentials
  from pipeline import vertex_submit
  monkeypatch.setattr(vertex_submit, 'default_credentials',
                      ga_credentials.AnonymousCredentials)


@pytest.fixture
def loopback_adc(fake_vertex, tmp_path, monkeypatch):
  """Application Default Credentials for task processes: a workforce
  (external account authorized user) file whose token_url is the fake's
  token endpoint, so google-auth refreshes with the real protocol. (An
  authorized_user file's token_uri is always Google's.)"""
  path = tmp_path / 'adc.json'
  path.write_text(json.dumps({
      'type': 'external_account_authorized_user',
      'audience': '//iam.googleapis.com/locations/global/workforcePools/'
                  'fmnist-test/providers/loopback',
      'client_id': 'fmnist-test', 'client_secret': 'not-a-secret',
      'refresh_token': 'loopback', 'token_url': f'{fake_vertex.url}/token'}))
  monkeypatch.setenv('GOOGLE_APPLICATION_CREDENTIALS', str(path))
  return str(path)
