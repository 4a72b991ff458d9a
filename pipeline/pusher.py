"""A Pusher executor whose pushes are atomic and idempotent.

TFX's filesystem Pusher copies files straight into `<base>/<version>/`, so a
model server polling the directory can see a half-written version. Locally we
copy into a hidden staging directory and rename it into place (atomic on one
filesystem; TF Serving ignores non-numeric names). On object stores (gs://),
where renames are copies, we defer to TFX, which writes saved_model.pb last.
A model identical to the newest pushed version (same SavedModel fingerprint)
is not pushed again, so a cached rerun does not create a new version.
"""

import os
import time
from typing import Optional

from absl import logging
import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

FINGERPRINT_FILE = 'fingerprint.pb'


def pushed_versions(base_dir: str) -> list:
  """Numeric version directories that hold a complete SavedModel, ascending."""
  if not tf.io.gfile.isdir(base_dir):
    return []
  versions = []
  for name in tf.io.gfile.listdir(base_dir):
    name = name.rstrip('/')
    if name.isdigit() and tf.io.gfile.exists(
        os.path.join(base_dir, name, 'saved_model.pb')):
      versions.append(int(name))
  return sorted(versions)


def _fingerprint(model_dir: str) -> Optional[bytes]:
  path = os.path.join(model_dir, FINGERPRINT_FILE)
  return io_utils.read_bytes_file(path) if tf.io.gfile.exists(path) else None


def push_model(model_dir: str, base_dir: str) -> tuple:
  """Pushes `model_dir` to `base_dir/<version>`; returns (version, pushed_new)."""
  versions = pushed_versions(base_dir)
  if versions:
    latest = os.path.join(base_dir, str(versions[-1]))
    fp = _fingerprint(model_dir)
    if fp is not None and fp == _fingerprint(latest):
      logging.info('Model is identical to pushed version %d; not pushing again.',
                   versions[-1])
      return versions[-1], False
  # Versions must increase even if two pushes land in the same second.
  version = max(int(time.time()), versions[-1] + 1 if versions else 0)
  final = os.path.join(base_dir, str(version))
  staging = os.path.join(base_dir, f'.staging-{version}')
  tf.io.gfile.makedirs(base_dir)
  if tf.io.gfile.exists(staging):
    tf.io.gfile.rmtree(staging)
  io_utils.copy_dir(model_dir, staging)
  tf.io.gfile.rename(staging, final)
  logging.info('Pushed model version %d to %s', version, final)
  return version, True


class AtomicPusherExecutor(tfx_pusher.Executor):
  """TFX Pusher executor with staged, rename-into-place local pushes."""

  def Do(self, input_dict, output_dict, exec_properties):
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    base_dir = destination.filesystem.base_directory
    if '://' in base_dir:
      return super().Do(input_dict, output_dict, exec_properties)

    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    model_path = self.GetModelPath(input_dict)
    version, _ = push_model(model_path, base_dir)
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push,
                     pushed_destination=os.path.join(base_dir, str(version)),
                     pushed_version=str(version))
