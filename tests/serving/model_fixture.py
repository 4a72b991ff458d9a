"""Builds a small, real SavedModel the way the pipeline exports one.

Transform analyzes a few random examples (`tests/transform_builder.py`) and
the model is saved with `models.signatures.export`, so the fixture carries the
same signatures (and the same embedded Transform graph) as a pushed model.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models import signatures
from models.config import ModelConfig
from models.model import build_model
from serving import config as cfg_lib

import transform_builder  # tests/transform_builder.py  # pylint: disable=g-bad-import-order

MODEL_NAME = 'fmnist'
SMALL = ModelConfig(conv_filters=(8,), dense_units=16, epochs=1)


def _transform_output(work_dir: str, num_examples: int, seed: int) -> str:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (num_examples, features.NUM_PIXELS))
  labels = rng.integers(0, features.NUM_CLASSES, num_examples)
  return transform_builder.write_transform_output(
      images, labels, os.path.join(work_dir, 'transform_output'))


def build_saved_model(export_dir: str, cfg: ModelConfig = SMALL,
                      num_examples: int = 200, seed: int = 0,
                      transform_dir: str = None, with_tta: bool = False) -> str:
  """Exports a SavedModel to `export_dir`; returns the transform output dir.

  `with_tta`: with `cfg`'s test-time augmentation, as the Trainer exports
  (the serving benchmark needs the served model's cost; tests compare with
  the Keras model's plain answers)."""
  if transform_dir is None:
    transform_dir = _transform_output(
        tempfile.mkdtemp(prefix='fmnist-tft-'), num_examples, seed)
  tf_transform_output = tft.TFTransformOutput(transform_dir)
  tf.keras.utils.set_random_seed(seed)
  model = build_model(cfg)
  layer = tf_transform_output.transform_features_layer()
  rng = np.random.default_rng(seed)
  x = layer({features.IMAGE_KEY: tf.constant(
      rng.integers(0, 256, (32, features.NUM_PIXELS)), tf.int64)})[
          features.transformed_name(features.IMAGE_KEY)]
  y = rng.integers(0, features.NUM_CLASSES, 32)
  model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # one step
  signatures.export(model, tf_transform_output, export_dir,
                    cfg.flip_tta and with_tta, cfg.shift_tta and with_tta)
  return transform_dir


def direct(predict_fn, pixels):
  import tensorflow as tf
  out = predict_fn(pixels=tf.constant(np.asarray(pixels, np.float32)))
  return {k: v.numpy() for k, v in out.items()}


def make_config(model_home, tmp_path, **overrides) -> cfg_lib.ServingConfig:
  log = overrides.pop('logging', cfg_lib.LogConfig(
      sink='jsonl', directory=str(tmp_path / 'request_logs')))
  return cfg_lib.ServingConfig(serving_dir=model_home['serving_dir'],
                               model_name=MODEL_NAME, logging=log, **overrides)


def push(src: str, serving_dir: str, version: int) -> None:
  """Copies a SavedModel in the Pusher's way: staged, then renamed."""
  staging = os.path.join(serving_dir, f'.staging-{version}')
  shutil.copytree(src, staging)
  os.rename(staging, os.path.join(serving_dir, str(version)))
