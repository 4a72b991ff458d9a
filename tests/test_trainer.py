"""The Trainer's run_fn on real Transform output: in memory and streamed.

A tiny transformed split is written the way Transform writes one (gzipped
`tf.Example`s of `image_xf`/`label_xf`, read through TFX's own DataAccessor),
so both input paths of `models.trainer` run as they do in the pipeline.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from models import features
from models import trainer
from models.config import ModelConfig

import transform_builder  # tests/transform_builder.py  # pylint: disable=g-bad-import-order

SMALL = {'conv_filters': [8], 'dense_units': 16, 'epochs': 2,
         'batch_size': 16, 'flip_tta': False}
IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
LABEL_XF = features.transformed_name(features.LABEL_KEY)


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
  """Transform output and a gzipped split of 50 transformed examples."""
  root = tmp_path_factory.mktemp('transformed')
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (50, features.NUM_PIXELS))
  labels = np.arange(50) % features.NUM_CLASSES
  transform_dir = transform_builder.write_transform_output(
      images, labels, str(root / 'transform_output'))
  layer = tft.TFTransformOutput(transform_dir).transform_features_layer()
  scaled = layer({features.IMAGE_KEY: tf.constant(images, tf.int64)})[
      IMAGE_XF].numpy()
  examples = standard_artifacts.Examples()
  examples.uri = str(root / 'examples')
  examples.split_names = artifact_utils.encode_split_names(['train'])
  split_dir = root / 'examples' / 'Split-train'
  split_dir.mkdir(parents=True)
  with tf.io.TFRecordWriter(str(split_dir / 'data.gz'), 'GZIP') as writer:
    for image, label in zip(scaled, labels):
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          IMAGE_XF: tf.train.Feature(
              float_list=tf.train.FloatList(value=image)),
          LABEL_XF: tf.train.Feature(
              int64_list=tf.train.Int64List(value=[label])),
      })).SerializeToString())
  accessor = tfx.components.DataAccessor(
      tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
          [examples], []),
      record_batch_factory=None, data_view_decode_fn=None)
  return {'transform_dir': transform_dir, 'accessor': accessor,
          'pattern': str(split_dir / '*'), 'labels': labels,
          'images': scaled}


def test_read_split_returns_every_example_once(transformed):
  cfg = ModelConfig.from_dict(SMALL)
  x, y = trainer.read_split(
      [transformed['pattern']], transformed['accessor'],
      tft.TFTransformOutput(transformed['transform_dir']), cfg)
  assert x[IMAGE_XF].shape == (50, features.NUM_PIXELS)
  np.testing.assert_array_equal(y, transformed['labels'])
  np.testing.assert_allclose(x[IMAGE_XF], transformed['images'], rtol=1e-6)


def test_read_split_of_no_examples_names_the_files(transformed, tmp_path):
  empty = tmp_path / 'empty.gz'
  with tf.io.TFRecordWriter(str(empty), 'GZIP'):
    pass
  with pytest.raises(ValueError, match='no examples in .*empty.gz'):
    trainer.read_split([str(empty)], transformed['accessor'],
                       tft.TFTransformOutput(transformed['transform_dir']),
                       ModelConfig.from_dict(SMALL))


def test_in_memory_batches_cover_the_split_once_per_epoch_in_new_orders():
  images = np.arange(50, dtype=np.float32).reshape(50, 1) * np.ones((1, 4))
  labels = np.arange(50)
  cfg = ModelConfig.from_dict(SMALL)
  dataset = trainer.in_memory_dataset(({IMAGE_XF: images}, labels), cfg,
                                      shuffle=True)
  epochs = []
  for _ in range(2):
    batches = list(dataset)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    order = np.concatenate([y.numpy() for _, y in batches])
    for x, y in batches:  # features stay with their label
      np.testing.assert_array_equal(x[IMAGE_XF].numpy()[:, 0], y.numpy())
    assert sorted(order) == list(range(50))
    epochs.append(order)
  assert list(epochs[0]) != list(epochs[1]) != list(range(50))
  unshuffled = trainer.in_memory_dataset(({IMAGE_XF: images}, labels), cfg,
                                         shuffle=False)
  assert np.concatenate([y for _, y in unshuffled]).tolist() == list(range(50))


def test_the_trainers_datasets_do_not_autotune(transformed):
  """Deleting an autotuned iterator stalled the Trainer for up to a minute
  after its last epoch (TF 2.16; models/trainer.without_autotune)."""
  cfg = ModelConfig.from_dict(SMALL)
  streamed = trainer.input_fn(
      [transformed['pattern']], transformed['accessor'],
      tft.TFTransformOutput(transformed['transform_dir']), cfg, shuffle=True)
  in_memory = trainer.in_memory_dataset(
      ({IMAGE_XF: transformed['images']}, transformed['labels']), cfg,
      shuffle=True)
  for dataset in (streamed, in_memory):
    assert dataset.options().autotune.enabled is False


def _fn_args(transformed, tmp_path, **model) -> tfx.components.FnArgs:
  """What the Trainer hands `run_fn`, the tiny split as train and eval."""
  return tfx.components.FnArgs(
      train_files=[transformed['pattern']],
      eval_files=[transformed['pattern']],
      transform_output=transformed['transform_dir'],
      serving_model_dir=str(tmp_path / 'serving'),
      model_run_dir=str(tmp_path / 'run'),
      data_accessor=transformed['accessor'],
      custom_config={trainer.MODEL_CONFIG_KEY: dict(SMALL, **model)})


@pytest.mark.parametrize('in_memory', [True, False])
def test_run_fn_trains_and_exports_a_servable_model(transformed, tmp_path,
                                                    in_memory):
  trainer.run_fn(_fn_args(transformed, tmp_path, in_memory=in_memory))
  with open(tmp_path / 'run' / trainer.HISTORY_FILE) as f:
    history = json.load(f)
  assert len(history['val_sparse_categorical_accuracy']) == SMALL['epochs']
  served = tf.saved_model.load(str(tmp_path / 'serving'))
  out = served.signatures['serving_default'](
      pixels=tf.zeros([3, features.NUM_PIXELS], tf.float32))
  np.testing.assert_allclose(out['probabilities'].numpy().sum(axis=1), 1,
                             rtol=1e-5)
  assert os.path.isdir(tmp_path / 'serving' / 'variables')
  # The temperature was fitted on the eval files and is recorded.
  with open(tmp_path / 'run' / trainer.TEMPERATURE_FILE) as f:
    fit = json.load(f)
  assert fit['examples'] == 50
  assert fit['nll_after'] <= fit['nll_before'] + 1e-9


def test_run_fn_without_temperature_scaling_fits_none(transformed, tmp_path):
  trainer.run_fn(_fn_args(transformed, tmp_path, epochs=1,
                          temperature_scaling=False))
  assert not os.path.exists(tmp_path / 'run' / trainer.TEMPERATURE_FILE)
  assert os.path.isdir(tmp_path / 'serving' / 'variables')
