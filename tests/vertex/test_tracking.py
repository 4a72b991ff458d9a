"""Vertex AI Experiments tracking through the real SDK, against a loopback."""

import re

from google.auth import credentials as ga_credentials
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from vertex_testenv import PROJECT, REGION
from models import features
from models import tracking
from models.config import ModelConfig

N_VAL = 40


def _tiny_fit(callbacks, epochs=2):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(80, 4)).astype('float32')
  y = rng.integers(0, features.NUM_CLASSES, size=80)
  train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
  val = tf.data.Dataset.from_tensor_slices((x[:N_VAL], y[:N_VAL])).batch(16)
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
      features.NUM_CLASSES, activation='softmax')])
  model.compile('adam', 'sparse_categorical_crossentropy',
                metrics=['sparse_categorical_accuracy'])
  cbs = callbacks(val)
  model.fit(train, validation_data=val, epochs=epochs, verbose=0,
            callbacks=cbs)
  return cbs


def _tracking(fake):
  return {'project': PROJECT, 'location': REGION, 'experiment': 'fmnist-tfx',
          'api_endpoint': fake.endpoint, 'api_transport': 'rest',
          'credentials': ga_credentials.AnonymousCredentials()}


def test_run_name_is_vertex_safe():
  cfg = ModelConfig(conv_dropout=0.1, dense_dropout=0.3)
  name = tracking.experiment_run_name(cfg)
  assert re.fullmatch(r'custom-cnn-16-32-128-512-0p1-0p3-\d{8}-\d{6}', name)


def test_per_class_metrics():
  labels = np.array([0, 0, 1, 1, 2])
  predicted = np.array([0, 1, 1, 1, 0])
  matrix, precision, recall, f1 = per = tracking.per_class_metrics(
      labels, predicted, num_classes=3)
  del per
  assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
  np.testing.assert_allclose(precision, [0.5, 2 / 3, 0.0])
  np.testing.assert_allclose(recall, [0.5, 1.0, 0.0])
  np.testing.assert_allclose(f1, [0.5, 0.8, 0.0])


def test_no_tracking_locally():
  assert tracking.callbacks(None, ModelConfig()) == []
  assert tracking.callbacks({'model': {}}, ModelConfig()) == []


def test_logs_params_epochs_and_confusion_matrix(fake_vertex):
  cbs = _tiny_fit(lambda val: tracking.callbacks(
      {'tracking': _tracking(fake_vertex)}, ModelConfig(), val))
  (callback,) = cbs
  run_id = f'fmnist-tfx-{callback.run_name}'
  contexts = fake_vertex.bodies('POST', '/metadataStores/default/contexts')
  run = [c for c in contexts if c.get('schemaTitle') == 'system.ExperimentRun']
  assert run and run[0]['displayName'] == callback.run_name
  final = fake_vertex.resources[
      f'projects/{PROJECT}/locations/{REGION}/metadataStores/default/'
      f'contexts/{run_id}']['metadata']
  assert final['_state'] == 'COMPLETE'
  params = final['_params']
  assert params['conv_filters'] == '16,32,128'
  assert params['learning_rate'] == pytest.approx(2e-3)
  metrics = final['_metrics']
  assert 0.0 <= metrics['macro_f1'] <= 1.0
  assert len([k for k in metrics if k.startswith('recall_')]) == 10
  assert metrics['epochs_trained'] == 2
  # One time-series write per epoch, steps 1 and 2.
  writes = fake_vertex.bodies('POST', ':write')
  steps = sorted({v['step'] for w in writes for d in w['timeSeriesData']
                  for v in d['values']})
  assert steps == ['1', '2']
  series = {b['displayName'] for b in fake_vertex.bodies('POST', '/timeSeries')}
  assert {'loss', 'val_loss', 'val_sparse_categorical_accuracy'} <= series
  (matrix,) = [b for b in fake_vertex.bodies('POST', '/artifacts')
               if b.get('schemaTitle') == 'google.ClassificationMetrics']
  confusion = matrix['metadata']['confusionMatrix']
  assert len(confusion['rows']) == 10
  assert sum(sum(row) for row in confusion['rows']) == N_VAL
  assert [a['displayName'] for a in confusion['annotationSpecs']] == list(
      features.CLASS_NAMES)


def test_tracking_failure_never_fails_training(fake_vertex, caplog):
  fake_vertex.respond = lambda *a: (403, {'error': {
      'code': 403, 'message': 'Permission denied', 'status':
      'PERMISSION_DENIED'}})
  cbs = _tiny_fit(lambda val: tracking.callbacks(
      {'tracking': _tracking(fake_vertex)}, ModelConfig(), val))
  assert not cbs[0].active
  assert fake_vertex.requests  # it did try
  assert any('tracking is off' in r.getMessage() for r in caplog.records)
