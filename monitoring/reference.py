"""The reference the statistical tests compare a window with.

The served model's outputs (class probabilities) and per-image features on
held-out data the model never trained on: the `eval` split of the span it was
trained on (`HOME/data/span-N/eval`), predicted by the pushed SavedModel
(`HOME/serving_model/<version>`, its `serving_default` signature, as the
proxy calls it). Computed once per model version and cached as
`OUTPUT_ROOT/reference/<version>.npz`; `--reference PATH` (local or gs://)
gives one instead (e.g. on Cloud Run, where neither directory exists).

Without a reference the TFDV checks still run and the report says which
tests were skipped and why.
"""

import io
import logging
import os
from typing import Optional, Tuple

import numpy as np

from models import features
from monitoring import baseline as baseline_lib
from monitoring import detectors
from monitoring.config import MonitorConfig
from monitoring.config import MonitorError
from pipeline.errors import UserError

REFERENCE_DIR = 'reference'
# Enough for the KS and chi-square tests to be limited by the window, not the
# reference (the pipeline's eval split holds 6,000 images); a larger split is
# subsampled evenly.
MAX_REFERENCE = 10_000
_BATCH = 1000


def serving_function(model_dir: str):
  """A pushed SavedModel's serving_default, as the proxy calls it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.saved_model.load(model_dir).signatures['serving_default']


def predict(serve, pixels: np.ndarray) -> np.ndarray:
  """Class probabilities [N, 10] of grey levels [N, 784] (serving_function)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models import signatures  # pylint: disable=g-import-not-at-top
  out = [serve(**{signatures.PIXELS_INPUT: tf.constant(
      pixels[i:i + _BATCH].astype(np.float32))})[signatures.PROBABILITIES]
         .numpy() for i in range(0, len(pixels), _BATCH)]
  return np.concatenate(out) if out else np.zeros((0, features.NUM_CLASSES))


def eval_pixels(span_dir: str, limit: int = MAX_REFERENCE) -> np.ndarray:
  """Pixels [N, 784] of a span's eval split, evenly subsampled to `limit`."""
  from pipeline import ingest  # pylint: disable=g-import-not-at-top
  images, _ = ingest.read_span_split(os.path.join(span_dir,
                                                  features.EVAL_SPLIT))
  pixels = images.reshape(len(images), features.NUM_PIXELS).astype(np.int64)
  if len(pixels) > limit:
    pixels = pixels[np.linspace(0, len(pixels) - 1, limit, dtype=int)]
  return pixels


def compute(model_dir: str, pixels: np.ndarray, model_version: str,
            description: str) -> detectors.Reference:
  return detectors.Reference.from_outputs(
      pixels, predict(serving_function(model_dir), pixels), model_version,
      description)


def _load_given(path: str) -> detectors.Reference:
  """`--reference`: a local or gs:// file (read whole: it is small)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      data = io.BytesIO(f.read())
  except (tf.errors.OpError, OSError) as e:
    raise MonitorError(f'--reference {path}: cannot read it ({e})') from None
  try:
    return detectors.Reference.load(path, data)
  except ValueError as e:
    raise MonitorError(f'--reference {e}') from None


def cache_path(cfg: MonitorConfig, version: str) -> str:
  return os.path.join(cfg.output_root, REFERENCE_DIR, f'{version}.npz')


def find(cfg: MonitorConfig, base: baseline_lib.Baseline
         ) -> Tuple[Optional[detectors.Reference], str]:
  """(reference, '') or (None, why there is none).

  A `--reference` that cannot be read is the user's to fix (MonitorError);
  a model without the files to compute one is a skip, not an error.
  """
  if cfg.reference:
    return _load_given(cfg.reference), ''
  version = base.model_version
  if not version:
    return None, ('no pushed model in MLMD to compute a reference with '
                  '(pass --reference)')
  cached = cache_path(cfg, version)
  if os.path.isfile(cached):
    try:
      return detectors.Reference.load(cached), ''
    except ValueError:
      pass  # a broken cache is recomputed below
  model_dir = os.path.join(cfg.serving_dir, version)
  span_dir = os.path.join(cfg.data_dir, f'span-{base.span}')
  if not os.path.isfile(os.path.join(model_dir, 'saved_model.pb')):
    return None, (f'no reference for model {version}: no SavedModel at '
                  f'{model_dir} (pass --reference)')
  try:
    pixels = eval_pixels(span_dir) if os.path.isdir(span_dir) else None
  except UserError as e:  # an eval split that cannot be read: say why
    return None, f'no reference for model {version}: {e} (pass --reference)'
  if pixels is None or len(pixels) < detectors.MIN_TEST_INSTANCES:
    return None, (f'no reference for model {version}: no eval split of span '
                  f'{base.span} at {span_dir} (pass --reference)')
  try:
    reference = compute(
        model_dir, pixels, version,
        f'model {version} on {len(pixels)} eval images of span {base.span}, '
        'which it did not train on')
  except Exception as e:  # pylint: disable=broad-except
    # A model that cannot answer is reported as a skip; the TFDV checks
    # still judge the window.
    logging.warning('computing the reference for model %s failed: %s',
                    version, e)
    return None, (f'no reference for model {version}: predicting the eval '
                  f'split with {model_dir} failed ({type(e).__name__}: '
                  f'{str(e).splitlines()[0] if str(e) else ""})')
  os.makedirs(os.path.dirname(cached), exist_ok=True)
  tmp = f'{cached}.tmp'
  reference.save(tmp)
  os.replace(tmp, cached)
  return reference, ''
