"""The Trainer's run_fn on real Transform output: in memory and streamed.

A tiny transformed split is written the way Transform writes one (gzipped
`tf.Example`s of `image_xf`/`label_xf`, read through TFX's own DataAccessor),
so both input paths of `models.trainer` run as they do in the pipeline.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from models import budget
from models import features
from models import model as model_lib
from models import trainer
from models import warm_start
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
  # No budget asked, none recorded.
  assert not os.path.exists(tmp_path / 'run' / budget.RECORD_FILE)
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


def test_run_fn_trains_only_the_epochs_its_time_budget_holds(transformed,
                                                            tmp_path):
  # A budget far shorter than one epoch: the first epoch is the only one,
  # the model is still exported, and the run dir says why it stopped.
  trainer.run_fn(_fn_args(transformed, tmp_path, train_minutes=1e-6))
  with open(tmp_path / 'run' / trainer.HISTORY_FILE) as f:
    assert len(json.load(f)['loss']) == 1
  with open(tmp_path / 'run' / budget.RECORD_FILE) as f:
    record = json.load(f)
  assert record['trained_epochs'] == 1 and record['configured_epochs'] == 2
  assert record['reason'].startswith('a 1e-06-minute training budget: 1 of 2 '
                                     'epochs fit')
  assert os.path.isdir(tmp_path / 'serving' / 'variables')


def test_run_fn_without_temperature_scaling_fits_none(transformed, tmp_path):
  trainer.run_fn(_fn_args(transformed, tmp_path, epochs=1,
                          temperature_scaling=False))
  assert not os.path.exists(tmp_path / 'run' / trainer.TEMPERATURE_FILE)
  assert os.path.isdir(tmp_path / 'serving' / 'variables')


@pytest.fixture(scope='module')
def base_export(transformed, tmp_path_factory):
  """A model the Trainer trained from scratch and exported: the next run's
  base model."""
  root = tmp_path_factory.mktemp('base')
  trainer.run_fn(_fn_args(transformed, root, epochs=3))
  with open(root / 'run' / warm_start.RECORD_FILE) as f:
    record = json.load(f)
  assert record['warm_started'] is False
  assert 'no blessed model' in record['reason']
  return str(root / 'serving')


def _checkpoint_values(export_dir: str) -> list:
  reader = tf.train.load_checkpoint(
      os.path.join(export_dir, 'variables', 'variables'))
  return [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
          if key.endswith('.ATTRIBUTES/VARIABLE_VALUE')]


def _holds_weights_of(model, export_dir: str) -> bool:
  saved = _checkpoint_values(export_dir)
  return all(any(s.shape == w.shape and np.array_equal(s, w) for s in saved)
             for w in model.get_weights())


def test_a_retraining_run_starts_from_the_base_models_weights(
    transformed, base_export, tmp_path):
  cfg = ModelConfig.from_dict(dict(SMALL, epochs=3, warm_start_epochs=2,
                                   warm_start_learning_rate=3e-4))
  start = warm_start.start(cfg, base_export)
  assert start.warm and start.base_model == base_export
  assert _holds_weights_of(start.model, base_export)
  assert not _holds_weights_of(model_lib.build_model(cfg), base_export)
  # Its own, shorter schedule with a fresh optimizer (not the base's Adam).
  assert (start.cfg.epochs, start.cfg.learning_rate) == (2, 3e-4)
  assert int(start.model.optimizer.iterations) == 0

  # Through run_fn: trains the warm schedule and records how it started.
  fn_args = _fn_args(transformed, tmp_path, epochs=3, warm_start_epochs=2)
  fn_args.base_model = base_export
  trainer.run_fn(fn_args)
  with open(tmp_path / 'run' / warm_start.RECORD_FILE) as f:
    record = json.load(f)
  assert record['warm_started'] and record['base_model'] == base_export
  assert record['epochs'] == 2 and 'warm-started from' in record['reason']
  with open(tmp_path / 'run' / trainer.HISTORY_FILE) as f:
    assert len(json.load(f)['loss']) == 2
  # What the next run compares its recipe with is this run's recipe, not
  # the warm schedule.
  with open(tmp_path / 'serving' / warm_start.CONFIG_FILE) as f:
    assert ModelConfig.from_dict(json.load(f)).recipe() == ModelConfig.from_dict(
        dict(SMALL, epochs=3)).recipe()


def test_a_warm_start_never_trains_longer_than_a_cold_run():
  assert ModelConfig(epochs=28, warm_start_epochs=8).warm_started().epochs == 8
  assert ModelConfig(epochs=1, warm_start_epochs=8).warm_started().epochs == 1


@pytest.mark.parametrize('change, reason', [
    ({'dense_dropout': 0.4}, 'another recipe (dense_dropout differ)'),
    ({'conv_filters': [4], 'epochs': 1}, 'another recipe (conv_filters, epochs'),
    ({'warm_start_epochs': 0}, 'warm starts are off'),
])
def test_another_recipe_trains_from_scratch(base_export, change, reason):
  cfg = ModelConfig.from_dict({**SMALL, 'epochs': 3, 'warm_start_epochs': 2,
                               **change})
  start = warm_start.start(cfg, base_export)
  assert not start.warm and start.cfg == cfg
  assert reason in start.reason
  assert not _holds_weights_of(start.model, base_export)


def test_the_warm_start_knobs_are_not_part_of_the_recipe(base_export):
  cfg = ModelConfig.from_dict(dict(SMALL, epochs=3, warm_start_epochs=5,
                                   warm_start_learning_rate=1e-4,
                                   warm_start_shrink=0.5,
                                   warm_start_perturb=0.1))
  assert warm_start.start(cfg, base_export).warm


def _trainable_and_frozen(model):
  trainable = {id(w) for w in model.trainable_weights}
  return ([w.numpy() for w in model.weights if id(w) in trainable],
          [w.numpy() for w in model.weights if id(w) not in trainable])


def test_shrink_and_perturb_moves_only_the_trainable_weights(base_export):
  plain = warm_start.start(ModelConfig.from_dict(
      dict(SMALL, epochs=3, warm_start_epochs=2)), base_export)
  base_trainable, base_frozen = _trainable_and_frozen(plain.model)
  assert plain.cfg.warm_start_shrink == 1 and 'shrunk' not in plain.reason

  # Shrink alone: every trainable weight exactly scaled, BatchNorm's moving
  # statistics left as the base had them.
  shrunk = warm_start.start(ModelConfig.from_dict(
      dict(SMALL, epochs=3, warm_start_epochs=2, warm_start_shrink=0.5)),
      base_export)
  trainable, frozen = _trainable_and_frozen(shrunk.model)
  assert base_frozen and all(np.array_equal(a, b)
                             for a, b in zip(frozen, base_frozen))
  assert all(np.allclose(a, 0.5 * b) for a, b in zip(trainable, base_trainable))
  assert 'shrunk by 0.5 and perturbed by 0' in shrunk.reason

  # With a perturbation: the shrunk weights plus a share of a fresh
  # initialization (a random kernel, not a constant), and it is recorded.
  moved = warm_start.start(ModelConfig.from_dict(
      dict(SMALL, epochs=3, warm_start_epochs=2, warm_start_shrink=0.5,
           warm_start_perturb=0.2)), base_export)
  trainable, _ = _trainable_and_frozen(moved.model)
  kernel = max(range(len(trainable)), key=lambda i: trainable[i].size)
  noise = trainable[kernel] - 0.5 * base_trainable[kernel]
  fresh_std = float(np.std(model_lib.build_model(moved.cfg).trainable_weights[
      kernel].numpy()))
  assert np.std(noise) == pytest.approx(0.2 * fresh_std, rel=0.2)
  assert moved.record()['shrink'] == 0.5 and moved.record()['perturb'] == 0.2


def test_a_base_without_a_recorded_recipe_or_fitting_weights_trains_from_scratch(
    base_export, tmp_path):
  cfg = ModelConfig.from_dict(dict(SMALL, epochs=3, warm_start_epochs=2))
  assert 'no blessed model' in warm_start.start(cfg, None).reason
  unrecorded = tmp_path / 'unrecorded'
  shutil.copytree(base_export, unrecorded)
  os.remove(unrecorded / warm_start.CONFIG_FILE)
  start = warm_start.start(cfg, str(unrecorded))
  assert not start.warm and 'has no readable' in start.reason
  # A recorded recipe whose weights do not fit (the record says 16 filters,
  # the variables hold 8): refused when loading, not half-loaded.
  wider = ModelConfig.from_dict(dict(SMALL, epochs=3, conv_filters=[16],
                                    warm_start_epochs=2))
  warm_start.write_config(str(unrecorded), wider)
  start = warm_start.start(wider, str(unrecorded))
  assert not start.warm and 'do not load' in start.reason
  assert start.model.get_layer(index=3).get_weights()[0].shape[-1] == 16
