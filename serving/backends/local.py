"""The pushed SavedModel, in-process, hot-swapped when a new version lands.

The Pusher renames complete versions into `<serving_dir>/<version>/` (TF
Serving's layout), so polling `pushed_versions` never sees a half-written
model. A new version is loaded and warmed up off the request path, then the
reference is swapped in one assignment: batches already running finish on the
old model, the next batch uses the new one, and no request is dropped. A
version that fails to load is logged and counted; the old one keeps serving.
"""

import asyncio
import dataclasses
import gc
import logging
import os
import threading
from typing import Any, Dict, Optional

import numpy as np

from models import features
from pipeline import pusher
from serving import batching
from serving import errors
from serving.backends import base

_log = logging.getLogger(__name__)
SIGNATURE = 'serving_default'


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  version: int
  path: str
  predict_fn: Any  # the `serving_default` concrete function
  keepalive: Any   # the loaded object: signatures need it alive


def load_version(serving_dir: str, version: int) -> LoadedModel:
  """Loads and warms up one version (the first call traces and is slow)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(serving_dir, str(version))
  loaded = tf.saved_model.load(path)
  fn = loaded.signatures[SIGNATURE]
  fn(pixels=tf.zeros([1, features.NUM_PIXELS], tf.float32))
  return LoadedModel(version, path, fn, loaded)


def _signature_defs(path: str) -> Dict[str, Any]:
  """The SavedModel's SignatureDefs as TF Serving prints them in /metadata."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from tensorflow.python.saved_model import loader_impl  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top
  graph = loader_impl.parse_saved_model(path).meta_graphs[0]
  defs = get_model_metadata_pb2.SignatureDefMap()
  for name, sig in graph.signature_def.items():
    if name != '__saved_model_init_op':
      defs.signature_def[name].CopyFrom(sig)
  return json_format.MessageToDict(defs, preserving_proto_field_name=True)


def _freeze_heap() -> None:
  """Takes what is alive now (TensorFlow, the model) out of the cyclic GC.

  Those ~700k objects are never garbage, yet every full collection walked
  them: a 300 ms pause that stalled all requests every few thousand. The old
  model's cycles become collectable again first, so a swap leaks nothing;
  that one full collection runs here, once per new version, off the loop.
  """
  gc.unfreeze()
  gc.collect()
  gc.freeze()


class LocalBackend(base.Backend):
  """Serves the newest pushed version from `config.serving_dir`."""

  name = 'local'

  def __init__(self, config, metrics):
    self._dir = config.serving_dir
    self._poll_s = config.poll_seconds
    self._metrics = metrics
    self._model: Optional[LoadedModel] = None
    self._stop = threading.Event()
    self._poller: Optional[threading.Thread] = None
    self._load_lock = threading.Lock()
    b = config.batching
    self._batcher = batching.MicroBatcher(
        self._run_batch,
        max_batch_size=b.max_batch_size if b.enabled else 1,
        max_wait_s=b.max_wait_ms / 1000 if b.enabled else 0.0,
        pending=metrics.in_flight.value,
        on_batch=metrics.batch_size.observe)

  # Loading -------------------------------------------------------------
  def refresh(self) -> bool:
    """Loads the newest pushed version if it is not the one serving.

    Returns True if a new version was swapped in. Also the rollback path: if
    the serving version is deleted, the newest remaining one is loaded.
    """
    with self._load_lock:
      versions = pusher.pushed_versions(self._dir)
      if not versions:
        return False
      newest = versions[-1]
      current = self._model
      if current is not None and current.version == newest:
        return False
      try:
        model = load_version(self._dir, newest)
      except Exception as e:  # pylint: disable=broad-except
        _log.error('could not load model version %d from %s: %s', newest,
                   self._dir, e)
        self._metrics.model_loads.labels(result='error').inc()
        return False
      self._model = model  # the atomic swap
      _freeze_heap()
      self._metrics.model_loads.labels(result='ok').inc()
      self._metrics.model_version.set(newest)
      _log.info('serving model version %d from %s', newest, model.path)
      return True

  def _poll(self) -> None:
    while not self._stop.wait(self._poll_s):
      try:
        self.refresh()
      except Exception:  # pylint: disable=broad-except
        _log.exception('polling %s failed', self._dir)

  async def start(self) -> None:
    await asyncio.get_running_loop().run_in_executor(None, self.refresh)
    if self._model is None:
      _log.warning('no loadable model under %s yet; polling every %.0fs',
                   self._dir, self._poll_s)
    self._poller = threading.Thread(target=self._poll, name='model-poller',
                                    daemon=True)
    self._poller.start()
    await self._batcher.start()

  async def close(self) -> None:
    self._stop.set()
    await self._batcher.close()
    if self._poller is not None:
      self._poller.join(timeout=5)

  def loaded(self) -> bool:
    return self._model is not None

  @property
  def version(self) -> Optional[int]:
    model = self._model
    return model.version if model else None

  # Predicting ------------------------------------------------------------
  def _run_batch(self, pixels: np.ndarray):
    model = self._model  # read once: the whole batch uses one version
    outputs = model.predict_fn(pixels=pixels)
    return model.version, {k: v.numpy() for k, v in outputs.items()}

  def _require(self, version: Optional[str]) -> LoadedModel:
    model = self._model
    if model is None:
      raise errors.BackendUnavailable(
          f'no model is loaded yet: nothing pushed under {self._dir}',
          kind='no_model')
    if version is not None and version != str(model.version):
      raise errors.NotFound(
          f'Servable not found for request: Specific(version {version}); '
          f'this server has version {model.version}', kind='unknown_version')
    return model

  async def predict(self, pixels: np.ndarray, version: Optional[str] = None,
                    signature: str = SIGNATURE) -> base.Prediction:
    # serving_uint8 computes exactly what serving_default does on the same
    # integers (it casts to float32 first), so both share one batch queue.
    self._require(version)
    (used, outputs), start, stop = await self._batcher.submit(pixels)
    if version is not None and str(used) != version:
      raise errors.NotFound(
          f'version {version} was replaced by {used} during the request; retry '
          'without a version or with the new one', kind='unknown_version')
    return base.Prediction(
        probabilities=outputs['probabilities'][start:stop],
        class_ids=outputs['class_ids'][start:stop],
        class_names=[n.decode() for n in outputs['class_names'][start:stop]],
        model_version=str(used))

  async def status(self, version: Optional[str] = None) -> Dict[str, Any]:
    model = self._require(version)
    return {'model_version_status': [base.version_status(model.version)]}

  async def metadata(self, version: Optional[str] = None) -> Dict[str, Any]:
    model = self._require(version)
    defs = await asyncio.get_running_loop().run_in_executor(
        None, _signature_defs, model.path)
    return {'model_spec': {'name': '', 'signature_name': '',
                           'version': str(model.version)},
            'metadata': {'signature_def': defs}}
