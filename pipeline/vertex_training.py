"""The Trainer on Vertex AI Training, through the API endpoint the spec names.

TFX 1.16's Vertex Trainer extension always sends its CustomJob to
`{region}-aiplatform.googleapis.com`, whatever endpoint the pipeline was
compiled for, so with `--api-endpoint` (a Private Service Connect host) the
submission and the Model Registry went one way and training another. This
executor is the extension's, except that it honours the endpoint: a host name
is used over gRPC, as TFX does; an `http(s)://` URL over REST (a loopback
Vertex stand-in: `fmnist pipeline dry-run` trains the Vertex Training variant
of the spec through one, which runs the CustomJob's own container command).
Without an endpoint it is TFX's executor unchanged.
"""

import time
from typing import Any, Dict, List

from absl import logging
from google.cloud.aiplatform import gapic
from tfx import types
from tfx.dsl.components.base import executor_spec
from tfx.extensions.google_cloud_ai_platform import constants
from tfx.extensions.google_cloud_ai_platform import training_clients
from tfx.extensions.google_cloud_ai_platform.trainer import component
from tfx.extensions.google_cloud_ai_platform.trainer import executor
from tfx.types import standard_component_specs
from tfx.utils import json_utils
from tfx.utils import name_utils

from pipeline import vertex_config

# TFX polls its training jobs every 30 s; so does this.
POLL_SECONDS = 30.0
_CONNECTION_RETRIES = 5


class JobClient(training_clients.VertexJobClient):
  """TFX's Vertex CustomJob client, talking to `api_endpoint`."""

  def __init__(self, region: str, api_endpoint: str):
    self._api_endpoint = api_endpoint
    super().__init__(region)

  def create_client(self) -> None:
    rest = vertex_config.is_rest_endpoint(self._api_endpoint)
    self._client = gapic.JobServiceClient(
        client_options={'api_endpoint': self._api_endpoint},
        transport='rest' if rest else None)


class Executor(executor.GenericExecutor):
  """TFX's Vertex Training executor, with the spec's API endpoint."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    custom_config = json_utils.loads(exec_properties.get(
        standard_component_specs.CUSTOM_CONFIG_KEY, 'null')) or {}
    api_endpoint = custom_config.get(vertex_config.TRAINING_API_ENDPOINT_KEY)
    if not api_endpoint:
      return super().Do(input_dict, output_dict, exec_properties)
    self._log_startup(input_dict, output_dict, exec_properties)
    job_args = dict(custom_config[executor.TRAINING_ARGS_KEY])
    project = job_args.pop('project')
    client = JobClient(custom_config[constants.VERTEX_REGION_KEY],
                       api_endpoint)
    job = client.create_training_job(
        input_dict, output_dict, exec_properties,
        name_utils.get_full_name(self._GetExecutorClass()), job_args,
        custom_config.get(executor.JOB_ID_KEY), None)
    client.launch_job(project, job)
    logging.info('CustomJob %s created at %s', client.get_job_name(),
                 api_endpoint)
    _wait(client)


def _wait(client: JobClient) -> None:
  """Polls the CustomJob to its end, as TFX's runner does; raises if it
  failed or was cancelled (the job's own error in the message)."""
  response, retries = client.get_job(), 0
  while client.get_job_state(response) not in client.JOB_STATES_COMPLETED:
    time.sleep(POLL_SECONDS)
    try:
      response, retries = client.get_job(), 0
    except ConnectionError:
      retries += 1
      if retries > _CONNECTION_RETRIES:
        raise
      client.create_client()
  if client.get_job_state(response) in client.JOB_STATES_FAILED:
    raise RuntimeError(
        f'CustomJob {client.get_job_name()} ended '
        f'{client.get_job_state(response).name}: {response.error.message}')
  logging.info('CustomJob %s succeeded', client.get_job_name())


class Trainer(component.Trainer):
  """TFX's Vertex Trainer component running `Executor`."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
