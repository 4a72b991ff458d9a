"""`fmnist pipeline {compile,run} --runner vertex`: Vertex AI Pipelines.

`compile` writes the PipelineJob JSON (no cloud, no credentials). `run` checks
everything it can locally (config, credentials, that the image exists),
compiles, submits an `aiplatform.PipelineJob` (with `--param` overrides of the
spec's runtime parameters) and, with `--wait`, follows it until it ends: exit 0
on success, 1 on failure or cancellation.
"""

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from typing import Any, Dict, Optional, Tuple

from pipeline import configs
from pipeline import vertex_config as vc

_SCOPES = ('https://www.googleapis.com/auth/cloud-platform',)
_MANIFEST_TYPES = ', '.join((
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json'))


class SubmissionError(configs.ConfigError):
  """Vertex AI rejected the job; the message says what it objected to."""


_HELP = {
    'project': 'GCP project ID',
    'region': 'Vertex AI / Dataflow region, e.g. us-central1',
    'bucket': 'GCS bucket for pipeline root, data, temp files and the model',
    'pipeline_root': 'gs:// pipeline root (default gs://BUCKET/pipeline_root/'
                     'PIPELINE_NAME)',
    'data_root': 'gs:// directory with span-N/ (default gs://BUCKET/data)',
    'serving_dir': 'gs:// directory the Pusher writes and the serving proxy '
                   'reads (default gs://BUCKET/serving_model)',
    'schema_dir': 'directory with schema.pbtxt inside the pipeline image '
                  '(default %(default)s)',
    'image': 'pipeline image URI with tag, e.g. REGION-docker.pkg.dev/PROJECT/'
             'REPO/fmnist-pipeline:TAG',
    'repository': 'Artifact Registry repository (with --image-tag, instead of '
                  '--image)',
    'image_tag': 'pipeline image tag (with --repository)',
    'service_account': 'service account the pipeline (and Dataflow) runs as',
    'training_service_account': 'service account of Vertex Training jobs '
                                '(default: --service-account)',
    'dataflow': 'run Beam components on Dataflow (default: yes)',
    'dataflow_machine_type': 'Dataflow worker machine type (default '
                             'n1-standard-4)',
    'dataflow_max_workers': 'Dataflow autoscaling limit (default 4)',
    'dataflow_disk_size_gb': 'Dataflow worker disk (default 50)',
    'vertex_training': 'train on Vertex Training (default: yes; no = inside '
                       'the pipeline step)',
    'training_machine_type': 'Vertex Training machine type (default '
                             'n1-standard-8)',
    'training_image': 'trainer image (default: the pipeline image; a GPU needs '
                      'CUDA in it)',
    'accelerator_type': 'GPU for training, e.g. NVIDIA_TESLA_T4',
    'accelerator_count': 'number of GPUs',
    'endpoint': 'also deploy blessed models to this Vertex Endpoint (display '
                'name)',
    'prediction_image': 'Vertex prediction container for --endpoint',
    'experiment': 'Vertex AI Experiments name (default: the pipeline name)',
    'tensorboard': 'Vertex TensorBoard resource for per-epoch time series',
    'labels': 'KEY=VALUE label on the job (repeatable; env: k=v,k2=v2)',
    'params': 'NAME=VALUE runtime parameter of the job, overriding the '
              'configured value (repeatable; env: a=b,c=d; known: '
              + ', '.join(sorted(vc.RUNTIME_PARAMETERS)) + ')',
    'output': 'where to write the compiled spec (default pipeline.json)',
    'api_endpoint': 'Vertex API endpoint override (e.g. Private Service '
                    'Connect)',
    'wait': 'follow the job until it ends; exit non-zero if it fails',
    'poll_seconds': 'seconds between state checks with --wait (default 30)',
    'check_image': 'check that the image exists before submitting '
                   '(default: yes)',
}


def add_args(parser) -> None:
  """Adds the Vertex flags to a `pipeline run`/`pipeline compile` parser.

  Every flag defaults to None so the environment and the config file can fill
  in what the command line leaves out.
  """
  group = parser.add_argument_group(
      'Vertex AI (--runner vertex)',
      'Each flag can also come from FMNIST_<NAME> (e.g. FMNIST_PROJECT) or '
      'from the --config file; flags win.')
  group.add_argument('--config', default=None,
                     help='YAML/JSON file of settings (env: FMNIST_CONFIG)')
  for field in dataclasses.fields(vc.VertexSettings):
    name, help_text = field.name, _HELP[field.name]
    kwargs: Dict[str, Any] = dict(default=None, help=help_text)
    if field.name in ('labels', 'params'):
      group.add_argument(vc.flag_name(name), dest=name, action='append',
                         **kwargs)
      continue
    if field.name == 'wait':
      kwargs['action'] = 'store_true'
    elif isinstance(field.default, bool):
      kwargs['action'] = argparse.BooleanOptionalAction
    elif isinstance(field.default, int):
      kwargs['type'] = int
    elif isinstance(field.default, float):
      kwargs['type'] = float
    if field.name == 'schema_dir':
      kwargs['help'] = help_text % {'default': field.default}
    group.add_argument(vc.flag_name(name), dest=name, **kwargs)


def settings_from_args(args,
                       environ: Optional[Dict[str, str]] = None
                       ) -> vc.VertexSettings:
  environ = os.environ if environ is None else environ
  config_path = getattr(args, 'config', None) or environ.get(
      vc.env_name('config'))
  file_values = vc.load_file(config_path) if config_path else {}
  flags = {f.name: getattr(args, f.name, None)
           for f in dataclasses.fields(vc.VertexSettings)}
  return vc.resolve_settings(flags, environ, file_values)


def config_from_args(args, environ=None
                     ) -> Tuple[configs.PipelineConfig, vc.VertexSettings]:
  """The validated Vertex PipelineConfig: local knobs + Vertex settings."""
  from fmnist import cli  # pylint: disable=g-import-not-at-top
  settings = settings_from_args(args, environ)
  # The same model, thresholds and caching flags as a local run.
  base = cli.pipeline_config(args)
  return vc.build(settings, base), settings


def compile_spec(args) -> int:
  from pipeline import kubeflow_v2_runner  # pylint: disable=g-import-not-at-top
  cfg, settings = config_from_args(args)
  # --param here becomes the spec's value (a submission may still override).
  path = kubeflow_v2_runner.compile_pipeline(cfg, settings.output,
                                             dict(cfg.vertex.params))
  print(f'wrote {path}')
  return 0


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


def submit(cfg: configs.PipelineConfig, settings: vc.VertexSettings,
           spec_path: str, credentials):
  """Submits the compiled spec as a PipelineJob; returns the job."""
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  vertex = cfg.vertex
  aiplatform.init(project=vertex.project, location=vertex.region,
                  credentials=credentials, api_endpoint=settings.api_endpoint,
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


def console_url(job, region: str, project: str) -> str:
  job_id = job.resource_name.rsplit('/', 1)[-1]
  return (f'https://console.cloud.google.com/vertex-ai/locations/{region}/'
          f'pipelines/runs/{job_id}?project={project}')


def wait_for(job, poll_seconds: float, out=None) -> int:
  """Follows the job until it ends; 0 if it succeeded, 1 otherwise."""
  out = out or sys.stdout
  from google.cloud.aiplatform import compat  # pylint: disable=g-import-not-at-top
  state_enum = compat.types.pipeline_state.PipelineState
  ended = {state_enum.PIPELINE_STATE_SUCCEEDED, state_enum.PIPELINE_STATE_FAILED,
           state_enum.PIPELINE_STATE_CANCELLED}
  last = None
  while True:
    state = job.state
    if state != last:
      print(f'{time.strftime("%H:%M:%S")} {state.name}', file=out, flush=True)
      last = state
    if state in ended:
      break
    time.sleep(poll_seconds)
  if state == state_enum.PIPELINE_STATE_SUCCEEDED:
    return 0
  message = job.gca_resource.error.message
  print(f'pipeline job {job.resource_name} ended {state.name}'
        + (f': {message}' if message else ''), file=sys.stderr)
  return 1


def run(args, credentials=None) -> int:
  """Validates, compiles, submits and (with --wait) follows the job."""
  from pipeline import kubeflow_v2_runner  # pylint: disable=g-import-not-at-top
  cfg, settings = config_from_args(args)
  credentials = credentials or default_credentials()
  if settings.check_image:
    check_image_exists(cfg.vertex.image, credentials)
  with tempfile.TemporaryDirectory() as tmp:
    spec = kubeflow_v2_runner.compile_pipeline(
        cfg, os.path.join(tmp, 'pipeline.json'))
    job = submit(cfg, settings, spec, credentials)
  print(f'submitted {job.resource_name}')
  print(console_url(job, cfg.vertex.region, cfg.vertex.project))
  if settings.wait:
    return wait_for(job, settings.poll_seconds)
  return 0
