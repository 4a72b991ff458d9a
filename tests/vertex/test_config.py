"""Bad input is a ConfigError naming what to fix, before any compile/submit."""

import pytest

from vertex_testenv import BUCKET, IMAGE, PROJECT, REGION, vertex_flags
from fmnist import cli
from pipeline import configs
from pipeline import vertex_config as vc


REQUIRED = dict(project=PROJECT, region=REGION, bucket=BUCKET, image=IMAGE)


def _build(**kw):
  """The Vertex PipelineConfig of a valid config changed by `kw` (None drops)."""
  values = {**REQUIRED, **kw}
  vertex = vc.VertexConfig.from_sources(
      {k: v for k, v in values.items() if v is not None}, environ={})
  return vc.for_vertex(configs.PipelineConfig.from_home('/tmp/unused'), vertex)


@pytest.mark.parametrize('overrides, message', [
    ({'project': None}, '--project (or FMNIST_PROJECT) is required'),
    ({'project': 'My_Project'}, 'is not a project ID'),
    ({'region': None}, '--region (or FMNIST_REGION) is required'),
    ({'region': 'uscentral'}, 'is not a region like us-central1'),
    ({'region': 'mars-north1'}, 'Vertex AI does not run in'),
    ({'bucket': None}, '--bucket (or FMNIST_BUCKET) is required'),
    ({'bucket': 'Bad_Bucket!'}, 'is not a bucket name'),
    ({'pipeline_root': '/tmp/root'}, '--pipeline-root (or '
     'FMNIST_PIPELINE_ROOT): \'/tmp/root\' must be a gs:// path'),
    ({'data_root': 'data/'}, '--data-root'),
    ({'image': None}, '--image (or FMNIST_IMAGE) is required'),
    ({'image': 'us-docker.pkg.dev/p/r/img'}, 'has no tag'),
    ({'image': 'us-docker.pkg.dev/p/r/img:bad tag!'}, "tag 'bad tag!' is "
     'invalid'),
    ({'image': 'not an image'}, 'is not an image reference'),
    ({'image': 'us-docker.pkg.dev/p/r/img:.bad'}, 'image tag \'.bad\' is '
     'invalid'),
    ({'image': None, 'repository': 'fmnist', 'image_tag': 'no/slash'},
     '--image-tag'),
    ({'service_account': 'runner@gmail.com'}, 'is not a service account'),
    ({'accelerator_count': 2}, 'needs --accelerator-type'),
    ({'accelerator_type': 'TPU_V3'}, 'is not a Vertex accelerator'),
    ({'endpoint': 'ep'}, '--endpoint (or FMNIST_ENDPOINT) needs '
     '--prediction-image'),
])
def test_bad_values_name_the_fix(overrides, message):
  with pytest.raises(configs.ConfigError, match=None) as e:
    _build(**overrides)
  assert message in str(e.value)


def test_bucket_from_pipeline_root_and_image_from_repository():
  cfg = _build(bucket=None, pipeline_root='gs://other-bucket/roots/x/',
               image=None, repository='fmnist', image_tag='abc123')
  assert cfg.pipeline_root == 'gs://other-bucket/roots/x'
  assert cfg.data_root == 'gs://other-bucket/data'
  assert cfg.vertex.image == (f'{REGION}-docker.pkg.dev/{PROJECT}/fmnist/'
                              'fmnist-pipeline:abc123')
  assert cfg.metadata_path is None


def test_flags_beat_env_beat_file(tmp_path):
  path = tmp_path / 'vertex.yaml'
  path.write_text('project: file-project\nregion: europe-west4\n'
                  f'bucket: {BUCKET}\nimage: {IMAGE}\n'
                  'dataflow-max-workers: 7\nlabels: {team: ml}\n')
  settings = vc.VertexConfig.from_sources(
      {'project': 'flag-project'},
      environ={'FMNIST_PROJECT': 'env-project', 'FMNIST_REGION': 'us-east1',
               'FMNIST_DATAFLOW': 'false', 'FMNIST_BUCKET': ''},
      file_values=vc.load_file(str(path)))
  assert settings.project == 'flag-project'
  assert settings.region == 'us-east1'
  assert settings.dataflow is False
  assert settings.dataflow_max_workers == 7
  assert settings.labels == (('team', 'ml'),)
  # An empty substitution means "not set": the file's bucket is used.
  assert settings.bucket == BUCKET


def test_params_from_flags_env_and_file(tmp_path):
  assert vc.VertexConfig.from_sources(
      {**REQUIRED, 'params': ['data_root=gs://a/x', 'data_root=gs://a/y/']},
      environ={'FMNIST_PARAMS': 'data_root=gs://env/d'}).params == (
          ('data_root', 'gs://a/y'),)  # flags win; the last repeat wins
  assert vc.VertexConfig.from_sources(
      REQUIRED, environ={'FMNIST_PARAMS': 'data_root=gs://env/d'}).params == (
          ('data_root', 'gs://env/d'),)
  path = tmp_path / 'vertex.yaml'
  path.write_text('params: {data_root: gs://file/d}\n')
  vertex = vc.VertexConfig.from_sources(REQUIRED, environ={},
                                        file_values=vc.load_file(str(path)))
  assert vertex.params == (('data_root', 'gs://file/d'),)
  # Validated params reach the pipeline config that `submit` reads.
  cfg = vc.for_vertex(configs.PipelineConfig.from_home('/tmp/unused'), vertex)
  assert cfg.vertex.params == (('data_root', 'gs://file/d'),)
  assert cfg.data_root == f'gs://{BUCKET}/data'  # the default stays


def test_the_config_validates_on_construction():
  with pytest.raises(configs.ConfigError, match='is not a project ID'):
    vc.VertexConfig(project='Bad_Project', region=REGION, bucket=BUCKET,
                    image=IMAGE)
  vertex = vc.VertexConfig(project=PROJECT, region=REGION,
                           pipeline_root='gs://other-bucket/root/',
                           repository='fmnist', image_tag='t2')
  assert vertex.bucket == 'other-bucket'
  assert vertex.image.endswith('/fmnist/fmnist-pipeline:t2')
  assert vertex.training_image == vertex.image
  assert vertex.pipeline_root_for('any-name') == 'gs://other-bucket/root'


def test_bad_env_and_file_values(tmp_path):
  with pytest.raises(configs.ConfigError, match='FMNIST_DATAFLOW_MAX_WORKERS'):
    vc.VertexConfig.from_sources(
        {}, environ={'FMNIST_DATAFLOW_MAX_WORKERS': 'many'})
  with pytest.raises(configs.ConfigError, match="--label \\(or FMNIST_LABELS\\): label 'oops' is not"):
    vc.VertexConfig.from_sources({}, environ={'FMNIST_LABELS': 'a=b,oops'})
  path = tmp_path / 'bad.yaml'
  path.write_text('projekt: x\n')
  with pytest.raises(configs.ConfigError, match="unknown keys \\['projekt'\\]"):
    vc.load_file(str(path))


def test_cli_compile_reads_environment(monkeypatch, tmp_path, capsys):
  monkeypatch.setenv('FMNIST_PROJECT', PROJECT)
  monkeypatch.setenv('FMNIST_REGION', REGION)
  monkeypatch.setenv('FMNIST_BUCKET', BUCKET)
  monkeypatch.setenv('FMNIST_IMAGE', 'no-tag.example/p/image')
  assert cli.main(['pipeline', 'compile', '--output',
                   str(tmp_path / 'p.json')]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: --image (or FMNIST_IMAGE)') and 'no tag' in err
  assert not (tmp_path / 'p.json').exists()


def test_cli_compile_rejects_local_pipeline_root(tmp_path, capsys):
  assert cli.main(['pipeline', 'compile',
                   *vertex_flags(**{'pipeline-root': str(tmp_path)})]) == 2
  assert 'must be a gs:// path' in capsys.readouterr().err
