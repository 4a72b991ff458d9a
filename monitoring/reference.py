"""The reference the statistical tests compare a window with.

The served model's outputs (class probabilities) and per-image features on
held-out data the model never trained on: the `eval` split of the span it was
trained on, predicted by the pipeline (pipeline/reference.py). Where it comes
from:
1. `--reference PATH` (local or gs://): a MonitoringReference artifact (its
   directory or `reference.npz`, e.g. on Vertex), or a `detectors.Reference`
   file;
2. otherwise the served model's MonitoringReference artifact, found through
   MLMD lineage (monitoring/baseline.py).

Without one (a model pushed before the pipeline made references), the TFDV
checks still run and the report says which tests were skipped and why.
"""

import io
import logging
import os
from typing import Dict, Iterable, Optional, Tuple

from monitoring import baseline as baseline_lib
from monitoring import detectors
from monitoring.config import MonitorConfig
from monitoring.config import MonitorError
from pipeline import reference as pipeline_reference


def read(path: str) -> bytes:
  """A reference file, or `reference.npz` in an artifact directory (local or
  gs://)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if tf.io.gfile.isdir(path):
    path = os.path.join(path, pipeline_reference.FILE)
  with tf.io.gfile.GFile(path, 'rb') as f:
    return f.read()


def from_pipeline(data: bytes, path: str, model_version: str,
                  how: str) -> detectors.Reference:
  """A MonitoringReference artifact's file as the tests' Reference.

  Raises ValueError if it is not one."""
  try:
    pixels, probabilities, description = pipeline_reference.read(
        io.BytesIO(data))
  except (OSError, ValueError, EOFError) as e:
    raise ValueError(f'{path}: not a monitoring reference ({e})') from None
  return detectors.Reference.from_outputs(
      pixels, probabilities, model_version,
      f'model {model_version} on {description} ({how})')


def _load_given(path: str, model_version: Optional[str]) -> detectors.Reference:
  """`--reference`: a local or gs:// file or artifact directory (read whole:
  it is small), in either format."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    data = read(path)
  except (tf.errors.OpError, OSError) as e:
    raise MonitorError(f'--reference {path}: cannot read it ({e})') from None
  try:
    return detectors.Reference.load(path, io.BytesIO(data))
  except ValueError:
    pass  # not the monitor's own format: the pipeline's?
  try:
    return from_pipeline(data, path, model_version or 'unknown',
                         f'given with --reference {path}')
  except ValueError as e:
    raise MonitorError(f'--reference {e}') from None


def _from_lineage(uri: str, version: str) -> detectors.Reference:
  """A MonitoringReference artifact MLMD lineage led to. Raises whatever
  reading it raises (OSError; TensorFlow's OpError on gs://; ValueError)."""
  return from_pipeline(read(uri), uri, version, 'the pipeline\'s '
                       'MonitoringReference, found through MLMD lineage')


def find(cfg: MonitorConfig, base: baseline_lib.Baseline
         ) -> Tuple[Optional[detectors.Reference], str]:
  """(reference, '') or (None, why there is none).

  A `--reference` that cannot be read is the user's to fix (MonitorError);
  a served model without a usable reference artifact is a skip, not an error:
  the TFDV checks still judge the window.
  """
  version = base.model_version
  if cfg.reference:
    return _load_given(cfg.reference, version), ''
  if not version:
    return None, 'no pushed model in MLMD (pass --reference)'
  if not base.reference_uri:
    return None, (f'no reference for model {version}: it has no '
                  'MonitoringReference artifact in MLMD (pushed by a pipeline '
                  'without that component: rerun the pipeline, or pass '
                  '--reference)')
  try:
    return _from_lineage(base.reference_uri, version), ''
  except Exception as e:  # pylint: disable=broad-except
    # Gone (OSError; TensorFlow's OpError on gs://) or not a reference.
    logging.warning('reference %s: %s', base.reference_uri, e)
    return None, (f'no reference for model {version}: its MonitoringReference '
                  f'{base.reference_uri} cannot be read ({type(e).__name__}: '
                  f'{str(e).splitlines()[0] if str(e) else ""})')


def find_others(cfg: MonitorConfig, base: baseline_lib.Baseline,
                versions: Iterable[str]) -> Dict[str, detectors.Reference]:
  """The pipeline's references of the window's other model versions (a
  window across a rollout), found through MLMD lineage; a version without
  one is left out of the model-output tests and counted there."""
  if cfg.reference or cfg.baseline_statistics:
    return {}  # no MLMD to look in (e.g. Cloud Run with given files)
  wanted = [v for v in versions if v and v != base.model_version]
  if not wanted:
    return {}
  found = {}
  for version, uri in baseline_lib.reference_uris(cfg.metadata_path,
                                                  wanted).items():
    try:
      found[version] = _from_lineage(uri, version)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('reference %s of model %s: %s', uri, version, e)
  return found
