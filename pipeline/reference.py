"""The monitoring reference, made by the pipeline for the model it trains.

`fmnist monitor` compares a window of served traffic with what the served
model answered on held-out data it never trained on: its class probabilities
on the `eval` split of the span it was trained on, and those images. The
`MonitoringReference` component computes that right after the Trainer, with
the model's `serving_default` signature (the one the proxy calls, raw grey
levels in), and stores it as an artifact in MLMD; the monitor finds it
through lineage from the served model version (monitoring/baseline.py), and
on Vertex by its path (`fmnist monitor --reference gs://...`).

This module is the file and its computation, light enough for the monitor to
import; the TFX component is pipeline/reference_component.py.

The file holds raw material (pixels and probabilities), not test statistics:
what the tests derive from it belongs to monitoring/detectors.py, which can
change without retraining.
"""

import os
from typing import Dict, Tuple

import numpy as np

from models import features
from pipeline import predictions

FILE = 'reference.npz'
# The artifact type. On Vertex a custom type's name is its schema title, which
# must read `<namespace>.<Name>`, and TFX's container entrypoint imports it as
# a class path: so `pipeline.MonitoringReference` (pipeline/__init__.py hands
# out reference_component's class lazily). The monitor's lineage looks for it.
TYPE_NAME = 'pipeline.MonitoringReference'
# Enough for the KS and chi-square tests to be limited by the window (a few
# hundred images), not the reference; a larger split is subsampled evenly.
MAX_IMAGES = 10_000
_BATCH = 1000


def serving_function(model_dir: str):
  """A SavedModel's serving_default, as the proxy calls it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.saved_model.load(
      predictions.saved_model_dir(model_dir)).signatures['serving_default']


def predict(serve, pixels: np.ndarray) -> np.ndarray:
  """Class probabilities [N, 10] of grey levels [N, 784] (serving_function)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models import signatures  # pylint: disable=g-import-not-at-top
  out = [serve(**{signatures.PIXELS_INPUT: tf.constant(
      pixels[i:i + _BATCH].astype(np.float32))})[signatures.PROBABILITIES]
         .numpy() for i in range(0, len(pixels), _BATCH)]
  return np.concatenate(out) if out else np.zeros((0, features.NUM_CLASSES))


def subsample(pixels: np.ndarray, limit: int = MAX_IMAGES) -> np.ndarray:
  """At most `limit` rows, evenly spread (deterministic)."""
  if len(pixels) > limit:
    pixels = pixels[np.linspace(0, len(pixels) - 1, limit, dtype=int)]
  return pixels


def write(path: str, pixels: np.ndarray, probabilities: np.ndarray,
          description: str) -> None:
  """Saves a reference file (local or gs://)."""
  import io  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  np.savez_compressed(buffer, pixels=np.asarray(pixels, np.uint8),
                      probabilities=np.asarray(probabilities, np.float32),
                      description=np.array(description))
  # The executor gets the output artifact's URI, not a directory (GCS has
  # none; a local or mounted root needs one).
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())


def read(source) -> Tuple[np.ndarray, np.ndarray, str]:
  """(pixels [N, 784], probabilities [N, 10], description) of a reference
  file (a path or an open binary file). Raises ValueError if it is not one."""
  with np.load(source, allow_pickle=False) as z:
    try:
      pixels, probabilities = z['pixels'], z['probabilities']
      description = str(z['description'])
    except KeyError as e:
      raise ValueError(f'no {e} in it') from None
  if (pixels.ndim != 2 or pixels.shape[1] != features.NUM_PIXELS or
      probabilities.shape != (len(pixels), features.NUM_CLASSES)):
    raise ValueError(f'shapes {pixels.shape} and {probabilities.shape} are '
                     f'not [N, {features.NUM_PIXELS}] and '
                     f'[N, {features.NUM_CLASSES}]')
  return pixels, probabilities, description


def compute(examples_uri: str, model_uri: str,
            split: str = features.EVAL_SPLIT) -> Dict:
  """The model's probabilities on `split` of an Examples artifact."""
  images = predictions.read_split(examples_uri, split).images
  pixels = subsample(images.reshape(len(images), features.NUM_PIXELS))
  probabilities = predict(serving_function(model_uri), pixels)
  return {'pixels': pixels, 'probabilities': probabilities}
