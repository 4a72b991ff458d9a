"""Per-example predictions of a SavedModel on a split of an Examples artifact.

TFX's Evaluator writes metrics and plots, not per-example predictions (it
takes no custom extractors or writers), so the paired comparison recomputes
them: each model's `examples` signature (the one TFMA uses, Transform graph
inside) on the serialized test `tf.Example`s, in the same order for both.
"""

import dataclasses
import os
from typing import List

import numpy as np
import tensorflow as tf

from models import features
from models import signatures
from pipeline.errors import UserError

SERVING_SUBDIR = 'Format-Serving'  # where the Trainer puts the SavedModel


class ModelNotFound(UserError):
  """A path that holds no SavedModel."""


@dataclasses.dataclass(frozen=True)
class TestSplit:
  serialized: List[bytes]
  images: np.ndarray   # [N, 28, 28] uint8, for thumbnails
  labels: np.ndarray   # [N] int64


def saved_model_dir(path: str) -> str:
  """`path` itself or the Trainer's `path/Format-Serving`, whichever holds a
  SavedModel."""
  for candidate in (path, os.path.join(path, SERVING_SUBDIR)):
    if tf.io.gfile.exists(os.path.join(candidate, 'saved_model.pb')):
      return candidate
  raise ModelNotFound(f'no SavedModel in {path} (nor in {SERVING_SUBDIR}/)')


def read_split(examples_uri: str, split: str = features.TEST_SPLIT) -> TestSplit:
  """All records of `Split-<split>` of an Examples artifact, in file order."""
  files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f'Split-{split}',
                                               '*')))
  if not files:
    raise UserError(f'no {split} split under {examples_uri}')
  serialized = [r.numpy() for r in
                tf.data.TFRecordDataset(files, compression_type='GZIP')]
  parsed = tf.io.parse_example(tf.constant(serialized),
                              features.raw_feature_spec())
  images = parsed[features.IMAGE_KEY].numpy().reshape(
      -1, features.IMAGE_SIZE, features.IMAGE_SIZE).astype(np.uint8)
  return TestSplit(serialized=serialized, images=images,
                   labels=parsed[features.LABEL_KEY].numpy())


def predict(model_path: str, serialized: List[bytes],
            batch_size: int = 1000) -> np.ndarray:
  """Predicted class ids of the model's `examples` signature."""
  model = tf.saved_model.load(saved_model_dir(model_path))
  fn = model.signatures['examples']
  out = [fn(examples=tf.constant(serialized[i:i + batch_size]))[
      signatures.CLASS_IDS].numpy() for i in range(0, len(serialized),
                                                    batch_size)]
  return np.concatenate(out) if out else np.zeros([0], np.int64)
