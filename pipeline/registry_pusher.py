"""The Vertex Pusher whose pushes are versions of one registry model.

Subclasses TFX 1.16's Vertex Pusher (component and executor) and replaces
its push: instead of `Model.upload(display_name='v<time>')`, a new version of
the registry model (`registry.register`), labelled with span, accuracy and
pipeline run, aliases moved to it, deployed to the Endpoint if one is set.
Needs the [vertex] extra (google-cloud-aiplatform), so only Vertex pipelines
import it.
"""

from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.dsl.components.base import executor_spec
from tfx.extensions.google_cloud_ai_platform.pusher import component as vertex_pusher
from tfx.extensions.google_cloud_ai_platform.pusher import executor as vertex_pusher_executor
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import json_utils
from tfx.utils import path_utils

from pipeline import registry


class RegistryPusherExecutor(vertex_pusher_executor.Executor):
  """Pushes a blessed model as the newest version of the registry model."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    custom_config = json_utils.loads(
        exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or
        'null') or {}
    if registry.REGISTRY_KEY not in custom_config:
      raise ValueError(f'custom_config needs {registry.REGISTRY_KEY!r}')
    cfg = registry.RegistryConfig.from_custom_config(
        custom_config[registry.REGISTRY_KEY])
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    model = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_KEY])
    blessing = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_BLESSING_KEY])
    run_id = self._context.pipeline_run_id if self._context else None
    provenance = registry.read_provenance(blessing.uri, model.uri, run_id)
    # Vertex reads the SavedModel where run_fn wrote it (gs:// on Vertex);
    # the push is the registry version. (GetModelPath would also look for an
    # Estimator's export/ directory, which a Keras run_fn never writes.)
    model_dir = path_utils.serving_model_dir(
        model.uri, path_utils.is_old_model_artifact(model))
    registered = registry.register(cfg, model_dir, provenance)
    logging.info('Registered %s (aliases %s)%s', registered.versioned_name,
                 ', '.join(registered.aliases),
                 f', deployed to {registered.deployed_to}'
                 if registered.deployed_to else '')
    self._MarkPushed(model_push, pushed_destination=registered.versioned_name,
                     pushed_version=registered.version_id)


class RegistryPusher(vertex_pusher.Pusher):
  """TFX's Vertex Pusher component running `RegistryPusherExecutor`."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(RegistryPusherExecutor)


def custom_config(cfg: registry.RegistryConfig) -> Dict[str, Any]:
  return {registry.REGISTRY_KEY: cfg.to_custom_config()}
