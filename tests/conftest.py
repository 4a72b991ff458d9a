"""Shared fixtures: a slice of the real dataset and a small exported model.

The model fixture runs the real Transform analyzers (tft_beam) and the real
export code on a few hundred real images, so signature and serving tests use
exactly what the pipeline produces, minus the time of a pipeline run.
"""

import os

import numpy as np
import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

DATASET_DIR = '/usr/share/datasets/fashion-mnist'


def pytest_configure(config):
  if not os.path.isdir(DATASET_DIR):
    raise pytest.UsageError(
        f'{DATASET_DIR} is missing: install the Debian package '
        'dataset-fashion-mnist (`make setup` does).')


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
  """No FMNIST_* settings leak in from the machine (or Cloud Build) running
  the tests: the CLI reads its Vertex, serving and alert defaults from them."""
  for name in list(os.environ):
    if name.startswith('FMNIST_'):
      monkeypatch.delenv(name)


@pytest.fixture(scope='session')
def real_slice():
  """(images uint8 [N,28,28], labels uint8 [N]): 600 real training images."""
  from pipeline import ingest
  return ingest.read_idx_pair(DATASET_DIR, ingest.TRAIN_FILES, limit=600)


@pytest.fixture(scope='session')
def transform_dir(real_slice, tmp_path_factory):
  """A Transform output directory made by the real `preprocessing_fn`."""
  import transform_builder  # tests/transform_builder.py
  images, labels = real_slice
  return transform_builder.write_transform_output(
      images, labels, str(tmp_path_factory.mktemp('transform')))


@pytest.fixture(scope='session')
def small_model_config():
  from models.config import ModelConfig
  return ModelConfig(conv_filters=(8, 16), dense_units=32, epochs=1,
                     batch_size=64)


@pytest.fixture(scope='session')
def trained_model(real_slice, transform_dir, small_model_config):
  """A small CNN fitted for one epoch on the transformed real slice."""
  import tensorflow_transform as tft
  from models import model as model_lib
  from models import features
  images, labels = real_slice
  tft_output = tft.TFTransformOutput(transform_dir)
  transformed = tft_output.transform_raw_features(
      {features.IMAGE_KEY: images.reshape(-1, features.NUM_PIXELS).astype(np.int64),
       features.LABEL_KEY: labels.astype(np.int64)})
  x = transformed[features.transformed_name(features.IMAGE_KEY)]
  model = model_lib.build_model(small_model_config)
  model.fit(x, labels.astype(np.int64), epochs=1, batch_size=64, verbose=0)
  return model, x


@pytest.fixture(scope='session')
def serving_dir(trained_model, transform_dir, tmp_path_factory):
  """A Pusher-style serving directory `<dir>/1/` holding the exported model."""
  import tensorflow_transform as tft
  from models import signatures
  model, _ = trained_model
  base = str(tmp_path_factory.mktemp('serving_model'))
  signatures.export(model, tft.TFTransformOutput(transform_dir),
                    os.path.join(base, '1'))
  return base
