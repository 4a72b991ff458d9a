"""Model Registry versions through the real aiplatform SDK, against the fake.

Each push is a new version of one registry model (`pipeline/registry.py`):
the first creates it, later ones add versions to it, the aliases move to the
newest, labels say which span/accuracy/run it is. Bad settings are refused
before any call.
"""

import json

from google.auth import credentials as ga_credentials
import pytest

from vertex_testenv import PROJECT, REGION, vertex_flags
from pipeline import configs
from pipeline import registry

PREDICTION_IMAGE = 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest'
MODEL = f'projects/{PROJECT}/locations/{REGION}/models/fmnist-cnn'
JOB = 'fmnist-tfx-20261204120000'


def _uri(task='Trainer_-4242'):
  """Where Vertex Pipelines puts a Trainer's model (ROOT/NUMBER/JOB/TASK)."""
  return f'gs://b/pipeline_root/fmnist-tfx/123456789/{JOB}/{task}/model'


def _cfg(fake, **kw):
  return registry.RegistryConfig(
      project=PROJECT, region=REGION, model_id='fmnist-cnn',
      serving_image=PREDICTION_IMAGE, labels=(('team', 'ml'),),
      api_endpoint=fake.endpoint, **kw)


def _push(fake, span, accuracy, **kw):
  """A push of span `span`'s model (one Trainer run per span)."""
  return registry.register(
      _cfg(fake, **kw), _uri(f'Trainer_-{span}') + '/Format-Serving',
      registry.Provenance(span=span, accuracy=accuracy, run=JOB),
      credentials=ga_credentials.AnonymousCredentials())


def test_first_push_creates_version_1_with_aliases(fake_vertex):
  done = _push(fake_vertex, span=1, accuracy=0.9399)
  assert (done.model, done.version_id) == (MODEL, '1')
  (upload,) = fake_vertex.bodies('POST', 'models:upload')
  assert upload['modelId'] == 'fmnist-cnn' and 'parentModel' not in upload
  (v1,) = fake_vertex.model_versions[MODEL]
  assert sorted(v1['versionAliases']) == ['blessed', 'default', 'serving']
  assert v1['displayName'] == 'fmnist-cnn'
  assert v1['artifactUri'] == _uri('Trainer_-1') + '/Format-Serving'
  assert v1['containerSpec']['imageUri'] == PREDICTION_IMAGE
  assert v1['labels'] == {'team': 'ml', 'span': '1', 'accuracy': '0-9399',
                          'pipeline_run': JOB}
  assert 'span 1' in v1['versionDescription']


def test_second_push_is_version_2_of_the_same_model(fake_vertex):
  from google.cloud import aiplatform
  _push(fake_vertex, span=1, accuracy=0.9399)
  done = _push(fake_vertex, span=2, accuracy=0.9412)
  assert (done.model, done.version_id) == (MODEL, '2')
  uploads = fake_vertex.bodies('POST', 'models:upload')
  assert uploads[1]['parentModel'] == MODEL and 'modelId' not in uploads[1]
  v1, v2 = fake_vertex.model_versions[MODEL]
  assert v1['versionAliases'] == []  # every alias moved to the new version
  assert sorted(v2['versionAliases']) == ['blessed', 'default', 'serving']
  assert v2['labels']['span'] == '2' and v2['labels']['accuracy'] == '0-9412'
  merges = [r for r in fake_vertex.requests
            if r['path'].endswith(':mergeVersionAliases')]
  assert [m['path'].rsplit('/', 1)[-1] for m in merges] == [
      'fmnist-cnn@1:mergeVersionAliases', 'fmnist-cnn@2:mergeVersionAliases']
  assert sorted(merges[1]['body']['versionAliases']) == ['blessed', 'serving']
  # The SDK resolves the alias to the newest version.
  blessed = aiplatform.Model('fmnist-cnn', version='blessed')
  assert blessed.version_id == '2' and blessed.labels['span'] == '2'


def test_push_with_an_endpoint_deploys_the_version(fake_vertex):
  first = _push(fake_vertex, span=1, accuracy=0.93, endpoint='fmnist-ep')
  second = _push(fake_vertex, span=2, accuracy=0.94, endpoint='fmnist-ep')
  assert first.deployed_to == second.deployed_to  # one endpoint, found again
  endpoint = fake_vertex.resources[second.deployed_to]
  assert endpoint['displayName'] == 'fmnist-ep'
  assert [d['model'] for d in endpoint['deployedModels']] == [
      f'{MODEL}@1', f'{MODEL}@2']
  newest = endpoint['deployedModels'][-1]
  assert endpoint['trafficSplit'] == {newest['id']: 100}
  assert newest['dedicatedResources']['machineSpec']['machineType'] == (
      'n1-standard-2')


def test_a_retried_push_of_the_same_model_adds_no_version(fake_vertex):
  _push(fake_vertex, span=1, accuracy=0.93, endpoint='fmnist-ep')
  again = _push(fake_vertex, span=1, accuracy=0.93, endpoint='fmnist-ep')
  assert (again.version_id, again.uploaded) == ('1', False)
  assert len(fake_vertex.model_versions[MODEL]) == 1
  assert len(fake_vertex.bodies('POST', 'models:upload')) == 1
  assert len(fake_vertex.resources[again.deployed_to]['deployedModels']) == 1


def test_run_is_read_from_the_vertex_artifact_uri():
  assert registry.run_from_uri(_uri()) == JOB
  assert registry.run_from_uri('/tmp/home/pipelines/Trainer/model/7') is None
  labels = registry.Provenance(span=3, accuracy=0.91234,
                               run='Fmnist.TFX run/2').labels()
  assert labels == {'span': '3', 'accuracy': '0-9123',
                    'pipeline_run': 'fmnist-tfx-run-2'}


def _executor_inputs(tmp_path, blessed=True):
  from tfx.types import standard_artifacts
  model = standard_artifacts.Model()
  model.uri = _uri()
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  (tmp_path / 'blessing').mkdir()
  (tmp_path / 'blessing' / 'decision.json').write_text(json.dumps(
      {'blessed': blessed, 'reason': 'r', 'span': 3,
       'numbers': {'accuracy': 0.9399}}))
  blessing.set_int_custom_property('blessed', int(blessed))
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / 'pushed')
  return {'model': [model], 'model_blessing': [blessing]}, {
      'pushed_model': [pushed]}, pushed


def _run_executor(fake, tmp_path, monkeypatch, blessed=True):
  import google.auth
  from tfx.utils import json_utils
  from pipeline import registry_pusher
  # Credentials the executor would get on Vertex (the job's account).
  monkeypatch.setattr(google.auth, 'default', lambda *a, **k: (
      ga_credentials.AnonymousCredentials(), PROJECT))
  inputs, outputs, pushed = _executor_inputs(tmp_path, blessed)
  config = registry_pusher.custom_config(_cfg(fake))
  registry_pusher.RegistryPusherExecutor().Do(
      inputs, outputs, {'custom_config': json_utils.dumps(config)})
  return pushed


def test_pusher_executor_registers_the_blessed_model(fake_vertex, tmp_path,
                                                     monkeypatch):
  pushed = _run_executor(fake_vertex, tmp_path, monkeypatch)
  assert pushed.get_int_custom_property('pushed') == 1
  assert pushed.get_string_custom_property('pushed_destination') == (
      f'{MODEL}@1')
  (v1,) = fake_vertex.model_versions[MODEL]
  assert v1['artifactUri'] == _uri() + '/Format-Serving'
  assert v1['labels'] == {'team': 'ml', 'span': '3', 'accuracy': '0-9399',
                          'pipeline_run': JOB}


def test_pusher_executor_pushes_nothing_unblessed(fake_vertex, tmp_path,
                                                  monkeypatch):
  pushed = _run_executor(fake_vertex, tmp_path, monkeypatch, blessed=False)
  assert pushed.get_int_custom_property('pushed') == 0
  assert fake_vertex.requests == []


@pytest.mark.parametrize('flags, message', [
    (['--registry-aliases', 'blessed,Serving_1'], "alias 'Serving_1' is "
     'invalid'),
    (['--registry-aliases', 'default'], '"default" is managed by Vertex'),
    (['--registry-aliases', '42'], "alias '42' is invalid"),
    (['--registry-model', '9cnn'], "'9cnn' is not a Vertex model ID"),
    (['--registry-model', 'FMNIST'], "'FMNIST' is not a Vertex model ID"),
])
def test_bad_registry_settings_are_refused_before_any_call(
    flags, message, fake_vertex, capsys, tmp_path):
  from fmnist import cli
  code = cli.main(['pipeline', 'run', '--runner', 'vertex', *vertex_flags(),
                   '--api-endpoint', fake_vertex.endpoint, '--prediction-image',
                   PREDICTION_IMAGE, *flags,
                   '--output', str(tmp_path / 'spec.json')])
  err = capsys.readouterr().err
  assert code == 2 and err.startswith('error: ') and message in err, err
  assert len(err.strip().splitlines()) == 1
  assert fake_vertex.requests == []


def test_registry_config_is_checked_in_the_library_too():
  with pytest.raises(configs.ConfigError, match='alias'):
    registry.RegistryConfig(project=PROJECT, region=REGION,
                            model_id='fmnist-cnn', serving_image='img',
                            aliases=('ok', 'x'))
