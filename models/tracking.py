"""Vertex AI Experiments tracking for a Keras fit, enabled from custom_config.

When the Trainer runs on Vertex, `custom_config['tracking']` names the
project, region and experiment; `callbacks(...)` then returns a callback that
logs the model config as parameters, every epoch's metrics as time series, and
at the end the validation per-class precision/recall/F1 and confusion matrix.
Locally there is no `tracking` key and no callback: TensorBoard has the same
numbers. Tracking is best effort: any failure is logged as a warning and
switches tracking off; it never fails training.
"""

import datetime
import os
import re
from typing import Any, Dict, List, Mapping, Optional

from absl import logging
import numpy as np
import tf_keras as keras

from models import features
from models import metrics
from models.config import ModelConfig

TRACKING_KEY = 'tracking'  # same key as pipeline.vertex_config.TRACKING_KEY
# Variables Vertex Training sets in the job's container.
_VERTEX_ENV = {'CLOUD_ML_PROJECT_ID': 'project', 'CLOUD_ML_REGION': 'location'}
_VERTEX_PARAMS_ENV = ('CLOUD_ML_JOB_ID', 'AIP_MODEL_DIR',
                      'AIP_TENSORBOARD_LOG_DIR')


def experiment_run_name(cfg: ModelConfig, now: Optional[datetime.datetime] = None
                        ) -> str:
  """`run_name()` + timestamp, in the alphabet Vertex allows ([a-z0-9-]).

  Dots (dropout rates) become `p`: custom-cnn-16-32-128-512-0p0-0p2-<ts>.
  """
  now = now or datetime.datetime.now(datetime.timezone.utc)
  name = f'{cfg.run_name()}-{now.strftime("%Y%m%d-%H%M%S")}'
  return re.sub(r'[^a-z0-9-]', '-', name.lower().replace('.', 'p'))[:100]


def _flat_params(cfg: ModelConfig) -> Dict[str, Any]:
  """Vertex params are scalars: tuples become strings."""
  return {k: (','.join(str(x) for x in v) if isinstance(v, (list, tuple))
              else v) for k, v in cfg.to_dict().items()}


def per_class_metrics(labels: np.ndarray, predicted: np.ndarray,
                      num_classes: int = features.NUM_CLASSES):
  """Confusion matrix (rows: true class) and per-class precision/recall/F1."""
  matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
  return (matrix, *metrics.class_scores(matrix))


class VertexExperimentCallback(keras.callbacks.Callback):
  """Logs one training run to Vertex AI Experiments; never raises."""

  def __init__(self, tracking: Mapping[str, Any], cfg: ModelConfig,
               validation_data=None, run_name: Optional[str] = None,
               aiplatform=None):
    super().__init__()
    self._tracking = dict(tracking)
    self._cfg = cfg
    self._validation_data = validation_data
    self.run_name = run_name or experiment_run_name(cfg)
    self._aip = aiplatform
    self.active = False

  def _safe(self, what: str, fn, *args, **kwargs):
    if not self.active and what != 'start':
      return None
    try:
      return fn(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.warning('Vertex AI Experiments: %s failed (%s: %s); tracking is '
                      'off for the rest of this run.', what, type(e).__name__,
                      e)
      self.active = False
      return None

  def _start(self):
    if self._aip is None:
      from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
      self._aip = aiplatform
    init_args = {k: v for k, v in self._tracking.items()
                 if k in ('project', 'location', 'api_endpoint', 'credentials',
                          'api_transport')}
    for env, key in _VERTEX_ENV.items():
      if key not in init_args and os.environ.get(env):
        init_args[key] = os.environ[env]
    self._aip.init(experiment=self._tracking['experiment'],
                   experiment_tensorboard=self._tracking.get('tensorboard'),
                   **init_args)
    self._aip.start_run(self.run_name)
    params = _flat_params(self._cfg)
    params.update({env.lower(): os.environ[env] for env in _VERTEX_PARAMS_ENV
                   if os.environ.get(env)})
    self._aip.log_params(params)
    self.active = True
    logging.info('Vertex AI Experiments: logging run %s of experiment %s',
                 self.run_name, self._tracking['experiment'])

  def on_train_begin(self, logs=None):
    self._safe('start', self._start)

  def on_epoch_end(self, epoch, logs=None):
    epoch_metrics = {k: float(v) for k, v in (logs or {}).items()
                     if np.isscalar(v) or np.ndim(v) == 0}
    if epoch_metrics:
      self._safe('log_time_series_metrics', self._aip_call,
                 'log_time_series_metrics', epoch_metrics, step=epoch + 1)
    self._last_epoch_metrics = epoch_metrics

  def _aip_call(self, name, *args, **kwargs):
    return getattr(self._aip, name)(*args, **kwargs)

  def _final_metrics(self):
    summary = {f'final_{k}': v
               for k, v in getattr(self, '_last_epoch_metrics', {}).items()}
    summary['epochs_trained'] = len(self.model.history.epoch) if getattr(
        self.model, 'history', None) else 0
    if self._validation_data is not None:
      labels, predicted = [], []
      for x, y in self._validation_data:
        labels.append(np.asarray(y).reshape(-1))
        predicted.append(np.argmax(self.model.predict(x, verbose=0), axis=-1))
      labels, predicted = np.concatenate(labels), np.concatenate(predicted)
      matrix, precision, recall, f1 = per_class_metrics(labels, predicted)
      summary['val_accuracy'] = float(np.mean(labels == predicted))
      for i, name in enumerate(features.CLASS_NAMES):
        key = re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')
        summary[f'precision_{key}'] = float(precision[i])
        summary[f'recall_{key}'] = float(recall[i])
        summary[f'f1_{key}'] = float(f1[i])
      summary['macro_f1'] = float(np.mean(f1))
      self._aip.log_classification_metrics(
          labels=list(features.CLASS_NAMES), matrix=matrix.tolist(),
          display_name='validation-confusion-matrix')
    self._aip.log_metrics(summary)

  def on_train_end(self, logs=None):
    self._safe('log_metrics', self._final_metrics)
    self._safe('end_run', self._aip_call, 'end_run')
    self.active = False


def callbacks(custom_config: Optional[Mapping[str, Any]], cfg: ModelConfig,
              validation_data=None) -> List[keras.callbacks.Callback]:
  """The tracking callbacks `custom_config` asks for (none locally)."""
  tracking = (custom_config or {}).get(TRACKING_KEY)
  if not tracking or not tracking.get('experiment'):
    return []
  return [VertexExperimentCallback(tracking, cfg, validation_data)]
