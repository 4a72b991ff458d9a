"""Submits a compiled pipeline to Vertex AI Pipelines and follows the job.

Library functions on typed configs (no flags, no printing): `submit(cfg)`
checks credentials and the image, compiles `cfg` and submits an
`aiplatform.PipelineJob`; `wait(job, ...)` follows it to the end. The
`fmnist pipeline run --runner vertex` command and the retraining trigger both
call them. Rejections a user can fix raise `SubmissionError`.
"""

import dataclasses
import logging
import os
import tempfile
import time
from typing import Any, Callable, Optional

from pipeline import configs
from pipeline import kubeflow_v2_runner

_SCOPES = ('https://www.googleapis.com/auth/cloud-platform',)
_MANIFEST_TYPES = ', '.join((
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json'))


class SubmissionError(configs.ConfigError):
  """Vertex AI rejected the job; the message says what it objected to."""


@dataclasses.dataclass(frozen=True)
class Submission:
  """A submitted PipelineJob."""
  job: Any                  # aiplatform.PipelineJob
  resource_name: str
  console_url: str


@dataclasses.dataclass(frozen=True)
class Outcome:
  """How a followed job ended."""
  state: str                # e.g. PIPELINE_STATE_SUCCEEDED
  error: str                # Vertex's error message, '' if none

  @property
  def succeeded(self) -> bool:
    return self.state == 'PIPELINE_STATE_SUCCEEDED'


def default_credentials():
  """Application Default Credentials, or a ConfigError saying how to get them."""
  import google.auth  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions  # pylint: disable=g-import-not-at-top
  try:
    credentials, _ = google.auth.default(scopes=list(_SCOPES))
  except exceptions.DefaultCredentialsError:
    raise configs.ConfigError(
        'no Google Cloud credentials: run `gcloud auth application-default '
        'login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file, or run '
        'where a service account is attached (Cloud Build)') from None
  return credentials


def check_image_exists(image: str, credentials, timeout: float = 20.0) -> None:
  """Asks the registry for the image manifest (Docker Registry v2 API).

  404 is an error a user can fix (build/push, or the tag is wrong); anything
  else that stops the check (network, permissions of the submitter) is only a
  warning, since the pipeline's service account may still pull the image.
  """
  from google.auth.transport import requests as google_requests  # pylint: disable=g-import-not-at-top
  reference, _, digest = image.partition('@')
  host, _, path = reference.partition('/')
  name, tag = path, None
  if ':' in path.rsplit('/', 1)[-1]:
    name, tag = path.rsplit(':', 1)
  ref = digest or tag
  local = host.split(':')[0] in ('localhost', '127.0.0.1')
  scheme = 'http' if local else 'https'
  url = f'{scheme}://{host}/v2/{name}/manifests/{ref}'
  try:
    response = google_requests.AuthorizedSession(credentials).head(
        url, headers={'Accept': _MANIFEST_TYPES}, timeout=timeout)
  except Exception as e:  # pylint: disable=broad-exception-caught
    logging.warning('Could not check that %s exists (%s); submitting anyway.',
                    image, e)
    return
  if response.status_code == 404:
    raise configs.ConfigError(
        f'image {image} does not exist: build and push it (cloudbuild.yaml), '
        'or fix --image / --image-tag (FMNIST_IMAGE / FMNIST_IMAGE_TAG)')
  if response.status_code >= 400:
    logging.warning('Could not check that %s exists (HTTP %s); submitting '
                    'anyway.', image, response.status_code)


def _console_url(resource_name: str, region: str, project: str) -> str:
  job_id = resource_name.rsplit('/', 1)[-1]
  return (f'https://console.cloud.google.com/vertex-ai/locations/{region}/'
          f'pipelines/runs/{job_id}?project={project}')


def _submit_spec(cfg: configs.PipelineConfig, spec_path: str, credentials):
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  vertex = cfg.vertex
  aiplatform.init(project=vertex.project, location=vertex.region,
                  credentials=credentials, api_endpoint=vertex.api_endpoint,
                  api_transport='rest')
  try:
    job = aiplatform.PipelineJob(
        display_name=cfg.pipeline_name,
        template_path=spec_path,
        pipeline_root=cfg.pipeline_root,
        enable_caching=cfg.enable_cache,
        labels=dict(vertex.labels) or None,
        # Overrides of the spec's runtime parameters (validated names).
        parameter_values=dict(vertex.params) or None,
        project=vertex.project,
        location=vertex.region,
        credentials=credentials)
    job.submit(service_account=vertex.service_account)
  except exceptions.GoogleAPICallError as e:
    raise SubmissionError(
        f'Vertex AI rejected the pipeline job ({e.code.name if e.code else e}'
        f'): {e.message}. Check the project, region, --service-account and '
        'that the submitter may act as it (roles/iam.serviceAccountUser)'
    ) from None
  except ValueError as e:
    raise SubmissionError(f'the pipeline job is invalid: {e}') from None
  return job


def submit(cfg: configs.PipelineConfig, credentials=None) -> Submission:
  """Checks the image, compiles `cfg` and submits it as a PipelineJob.

  `cfg` is a Vertex pipeline config (`vertex_config.for_vertex`); credentials
  default to Application Default Credentials.
  """
  if cfg.vertex is None:
    raise configs.ConfigError('submitting to Vertex needs a Vertex config')
  credentials = credentials or default_credentials()
  if cfg.vertex.check_image:
    check_image_exists(cfg.vertex.image, credentials)
  with tempfile.TemporaryDirectory() as tmp:
    spec = kubeflow_v2_runner.compile_pipeline(
        cfg, os.path.join(tmp, 'pipeline.json'))
    job = _submit_spec(cfg, spec, credentials)
  return Submission(job=job, resource_name=job.resource_name,
                    console_url=_console_url(job.resource_name,
                                             cfg.vertex.region,
                                             cfg.vertex.project))


def wait(submission: Submission, poll_seconds: float,
         on_state: Optional[Callable[[str], None]] = None) -> Outcome:
  """Follows the job until it ends; `on_state` hears each new state's name."""
  from google.cloud.aiplatform import compat  # pylint: disable=g-import-not-at-top
  state_enum = compat.types.pipeline_state.PipelineState
  ended = {state_enum.PIPELINE_STATE_SUCCEEDED, state_enum.PIPELINE_STATE_FAILED,
           state_enum.PIPELINE_STATE_CANCELLED}
  job, last = submission.job, None
  while True:
    state = job.state
    if state != last:
      if on_state is not None:
        on_state(state.name)
      last = state
    if state in ended:
      break
    time.sleep(poll_seconds)
  error = ''
  if state != state_enum.PIPELINE_STATE_SUCCEEDED:
    error = job.gca_resource.error.message or ''
  return Outcome(state=state.name, error=error)
