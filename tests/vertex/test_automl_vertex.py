"""`fmnist automl train|compare` through the real SDK against the loopback
Vertex server: the requests AutoML gets, and its evaluation next to the CNN's."""

import os

from google.auth import credentials as ga_credentials
import numpy as np
import pytest

from fmnist import cli
from models import features
from pipeline import automl
from vertex_testenv import PROJECT, REGION  # pylint: disable=g-bad-import-order

IMPORT_FILE = 'gs://fmnist-test-bucket/automl/import.jsonl'



def _train(fake, *extra):
  return cli.main(['automl', 'train', '--project', PROJECT, '--region', REGION,
                   '--import-file', IMPORT_FILE, '--api-endpoint',
                   fake.endpoint, *extra])


def _evaluation(correct=0.9):
  """A ModelEvaluation as Vertex returns it: labels in its own order."""
  names = [automl.display_name(c) for c in reversed(range(10))]
  rows = np.full((10, 10), (1 - correct) * 100 / 9)
  np.fill_diagonal(rows, correct * 100)
  return {'metricsSchemaUri': 'gs://google-cloud-aiplatform/schema/'
                              'modelevaluation/classification_metrics_1.0.0.yaml',
          'metrics': {'auPrc': 0.97, 'confusionMatrix': {
              'annotationSpecs': [{'id': str(i), 'displayName': n}
                                  for i, n in enumerate(names)],
              'rows': rows.tolist()}}}


def test_train_imports_the_dataset_and_trains_on_the_cnns_splits(
    fake_vertex, anonymous, capsys):
  assert _train(fake_vertex, '--wait', '--budget-node-hours', '8') == 0
  out = capsys.readouterr().out
  assert 'PIPELINE_STATE_SUCCEEDED' in out and 'model: projects/' in out
  (dataset,) = fake_vertex.bodies('POST', '/datasets')[:1]
  assert dataset['metadataSchemaUri'].endswith('metadata/image_1.0.0.yaml')
  (imported,) = [r['body'] for r in fake_vertex.requests
                 if r['path'].endswith(':import')]
  config = imported['importConfigs'][0]
  assert config['gcsSource']['uris'] == [IMPORT_FILE]
  assert config['importSchemaUri'] == automl.IMPORT_SCHEMA_URI
  (pipeline,) = fake_vertex.bodies('POST', '/trainingPipelines')
  assert pipeline['trainingTaskDefinition'].endswith(
      'automl_image_classification_1.0.0.yaml')
  inputs = pipeline['trainingTaskInputs']
  assert (int(inputs['budgetMilliNodeHours']), inputs['multiLabel'],
          inputs['modelType']) == (8000, False, 'CLOUD')
  split = pipeline['inputDataConfig']['filterSplit']
  label = 'labels.aiplatform.googleapis.com/ml_use='
  assert split == {'trainingFilter': label + 'training',
                   'validationFilter': label + 'validation',
                   'testFilter': label + 'test'}


def test_a_failed_training_pipeline_is_exit_1_with_its_error(
    fake_vertex, anonymous, capsys):
  fake_vertex.training_error = 'quota exceeded for node hours'
  assert _train(fake_vertex, '--wait') == 1
  captured = capsys.readouterr()
  assert 'PIPELINE_STATE_FAILED' in captured.out
  assert captured.err.startswith('error: ') and 'quota exceeded' in captured.err
  assert 'Traceback' not in captured.err


@pytest.mark.parametrize('extra, message', [
    (['--budget-node-hours', '2'], '8 to 800 node hours'),
    (['--import-file', '/tmp/import.jsonl'], 'from Cloud Storage'),
])
def test_bad_settings_stop_before_any_request(fake_vertex, anonymous, capsys,
                                              extra, message):
  assert _train(fake_vertex, *extra) == 2
  assert message in capsys.readouterr().err
  assert not fake_vertex.requests


def test_compare_reads_automls_evaluation_in_its_label_order(
    fake_vertex, anonymous, tmp_path):
  fake_vertex.automl_evaluation = _evaluation(correct=0.9)
  assert _train(fake_vertex, '--wait') == 0
  (model,) = fake_vertex.model_evaluations
  other = automl.automl_side(model, PROJECT, REGION, fake_vertex.endpoint,
                             ga_credentials.AnonymousCredentials())
  assert other.accuracy == pytest.approx(0.9)
  assert other.test_images == 1000
  assert other.per_class[0]['recall'] == pytest.approx(0.9)
  cnn = automl.Side(name='CNN', source='TFMA', accuracy=0.93,
                    test_images=10000, per_class={
                        c: {'precision': 0.93, 'recall': 0.93, 'f1': 0.93}
                        for c in range(features.NUM_CLASSES)})
  text = automl.format_comparison(cnn, other)
  assert 'different evaluators' in text and '0.9000' in text
  page = automl.write_comparison(cnn, other, str(tmp_path))
  assert os.path.getsize(tmp_path / 'per_class.png') > 1000
  assert 'CNN vs. the AutoML baseline' in open(page).read()


def test_compare_a_model_without_evaluation_says_so(fake_vertex, anonymous):
  assert _train(fake_vertex, '--wait') == 0
  (model,) = fake_vertex.model_evaluations
  with pytest.raises(automl.AutoMLError, match='has no evaluation yet'):
    automl.automl_side(model, PROJECT, REGION, fake_vertex.endpoint,
                       ga_credentials.AnonymousCredentials())
