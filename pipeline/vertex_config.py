"""What differs when the pipeline runs on Vertex AI: one typed, validated config.

`VertexConfig` is parsed and validated in one step: `from_sources(...)` merges
CLI flags, `FMNIST_*` environment variables (Cloud Build substitutions map onto
them) and a YAML/JSON file (`--config`/`FMNIST_CONFIG`), in that order of
precedence, over the defaults; the constructor validates and fills in derived
values (bucket from the pipeline root, image from repository and tag, gs://
paths under the bucket). Every error names the flag and variable to fix. No
project or bucket lives in code.

`for_vertex(base, vertex)` gives the `PipelineConfig` that `create_components`
compiles: Beam on Dataflow, the Trainer on Vertex Training and (with a
prediction image) a new Model Registry version per push, deployed to an
Endpoint if one is set; everything else is the local pipeline unchanged.
"""

import dataclasses
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from pipeline import configs
from pipeline import registry

ENV_PREFIX = 'FMNIST_'
# Where the Dockerfile puts the repository; the curated schema is read from
# there at run time, so compiled specs never carry the compiling machine's paths.
IMAGE_REPO_DIR = '/opt/fmnist'
PIPELINE_IMAGE_NAME = 'fmnist-pipeline'
# custom_config key for models/tracking.py (Vertex AI Experiments).
TRACKING_KEY = 'tracking'
# Trainer custom_config key: the Vertex API endpoint pipeline/vertex_training
# sends the CustomJob to (TFX's own executor has none).
TRAINING_API_ENDPOINT_KEY = 'vertex_api_endpoint'

_PROJECT_RE = re.compile(r'^[a-z][a-z0-9-]{4,28}[a-z0-9]$')
_REGION_RE = re.compile(r'^[a-z]+-[a-z]+[0-9]+$')
_BUCKET_RE = re.compile(r'^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$')
_SA_RE = re.compile(r'^[a-z][a-z0-9-]{4,29}@[a-z0-9-]+\.iam\.gserviceaccount\.com$')
# [host[:port]/]path[:tag][@digest]; the tag rule is Docker's.
_IMAGE_RE = re.compile(
    r'^(?P<repo>[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._-]+)+)'
    r'(:(?P<tag>[^@/]+))?(@(?P<digest>sha256:[0-9a-f]{64}))?$')
_TAG_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
_LABEL_KEY_RE = re.compile(r'^[a-z][a-z0-9_-]{0,62}$')
_LABEL_VALUE_RE = re.compile(r'^[a-z0-9_-]{0,63}$')
_ACCELERATOR_RE = re.compile(r'^NVIDIA_[A-Z0-9_]+$')
# Runtime parameters of the compiled spec (name -> what it is). Each defaults
# to the configured value, and `--param NAME=VALUE` overrides it per job, so
# one spec (e.g. the one Cloud Build uploads) can run against other data.
RUNTIME_PARAMETERS = {
    'data_root': 'gs:// directory with span-N/ that ImportExampleGen reads',
}
# Settings given as KEY=VALUE pairs; an empty value means "none", not "unset".
_PAIR_FIELDS = ('labels', 'params')


def env_name(field: str) -> str:
  return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
  if field in _PAIR_FIELDS:  # repeatable: --label a=b --label c=d
    return '--' + field[:-1]
  return '--' + field.replace('_', '-')


def _where(field: str) -> str:
  return f'{flag_name(field)} (or {env_name(field)})'


@dataclasses.dataclass(frozen=True)
class VertexConfig:
  """Every Vertex setting, validated on construction.

  Required values (project, region, bucket or pipeline root, image or
  repository and tag) may be left out of the arguments only to be refused
  with a message naming the flag; after construction the derived values are
  filled in (bucket, data_root, serving_dir, image, training_image). The
  pipeline root depends on the pipeline's name: `pipeline_root_for(name)`.
  """
  project: Optional[str] = None
  region: Optional[str] = None
  bucket: Optional[str] = None
  pipeline_root: Optional[str] = None   # default gs://BUCKET/pipeline_root/NAME
  data_root: Optional[str] = None       # default gs://BUCKET/data
  serving_dir: Optional[str] = None     # default gs://BUCKET/serving_model
  schema_dir: str = f'{IMAGE_REPO_DIR}/schema'
  image: Optional[str] = None           # full pipeline image URI, or:
  repository: Optional[str] = None      # Artifact Registry repo + image_tag
  image_tag: Optional[str] = None
  service_account: Optional[str] = None           # runs the pipeline, Dataflow
  training_service_account: Optional[str] = None  # default: service_account
  dataflow: bool = True
  dataflow_machine_type: str = 'n1-standard-4'
  dataflow_max_workers: int = 4
  dataflow_disk_size_gb: int = 50
  vertex_training: bool = True
  training_machine_type: str = 'n1-standard-8'
  training_image: Optional[str] = None  # default: the pipeline image
  accelerator_type: Optional[str] = None  # e.g. NVIDIA_TESLA_T4
  accelerator_count: int = 0
  endpoint: Optional[str] = None        # Vertex Endpoint display name to push to
  prediction_image: Optional[str] = None  # serving container for the Endpoint
  # With a prediction image, each push is a new version of this registry model.
  registry_model: str = 'fmnist-cnn'
  registry_aliases: Tuple[str, ...] = registry.DEFAULT_ALIASES
  experiment: Optional[str] = None      # default: the pipeline name
  tensorboard: Optional[str] = None     # Vertex TensorBoard for time series
  labels: Tuple[Tuple[str, str], ...] = ()
  params: Tuple[Tuple[str, str], ...] = ()  # runtime parameter overrides
  # Compiling and submitting.
  output: str = 'pipeline.json'         # compiled spec path
  api_endpoint: Optional[str] = None    # e.g. a Private Service Connect host
  wait: bool = False
  poll_seconds: float = 30.0
  check_image: bool = True

  def __post_init__(self):
    derived = _validate(self)
    for name, value in derived.items():
      object.__setattr__(self, name, value)

  @classmethod
  def from_sources(cls, flags: Mapping[str, Any],
                   environ: Optional[Mapping[str, str]] = None,
                   file_values: Optional[Mapping[str, Any]] = None
                   ) -> 'VertexConfig':
    """Flags > environment > file > defaults (None means "not given")."""
    environ = os.environ if environ is None else environ
    file_values = file_values or {}
    values = {}
    for field in SETTINGS:
      for source in (flags.get(field), environ.get(env_name(field)),
                     file_values.get(field)):
        if source is not None and not (
            isinstance(source, str) and source == '' and
            field not in _PAIR_FIELDS):
          values[field] = _convert(field, source)
          break
    return cls(**values)

  @property
  def temp_location(self) -> str:
    return f'gs://{self.bucket}/tmp'

  def beam_pipeline_args(self, local_args: Tuple[str, ...]) -> Tuple[str, ...]:
    """Dataflow, with workers from the pipeline image (same code, same deps)."""
    if not self.dataflow:
      return tuple(local_args) + (f'--project={self.project}',
                                  f'--temp_location={self.temp_location}')
    args = [
        '--runner=DataflowRunner',
        f'--project={self.project}',
        f'--region={self.region}',
        f'--temp_location={self.temp_location}',
        f'--machine_type={self.dataflow_machine_type}',
        f'--max_num_workers={self.dataflow_max_workers}',
        f'--disk_size_gb={self.dataflow_disk_size_gb}',
        '--experiments=use_runner_v2',
        f'--sdk_container_image={self.image}',
    ]
    if self.service_account:
      args.append(f'--service_account_email={self.service_account}')
    return tuple(args)

  def runtime_parameter(self, name: str, default: str):
    """`name` as a TFX RuntimeParameter whose default is the configured value.

    KubeflowV2DagRunner declares it in `root.inputDefinitions` but drops the
    default; `kubeflow_v2_runner` writes it into the spec's `runtimeConfig`.
    """
    if name not in RUNTIME_PARAMETERS:
      raise KeyError(f'{name!r} is not in RUNTIME_PARAMETERS')
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    return tfx.dsl.experimental.RuntimeParameter(
        name=name, ptype=str, default=default,
        description=RUNTIME_PARAMETERS[name])

  def training_job_args(self) -> Dict[str, Any]:
    """`ai_platform_training_args`: a Vertex CustomJob running our image."""
    machine_spec = {'machine_type': self.training_machine_type}
    if self.accelerator_type:
      machine_spec['accelerator_type'] = self.accelerator_type
      machine_spec['accelerator_count'] = self.accelerator_count
    job_spec: Dict[str, Any] = {
        'worker_pool_specs': [{
            'machine_spec': machine_spec,
            'replica_count': 1,
            'container_spec': {'image_uri': self.training_image},
        }],
    }
    if self.training_service_account:
      job_spec['service_account'] = self.training_service_account
    return {'project': self.project, 'job_spec': job_spec,
            'labels': dict(self.labels)}

  def pipeline_root_for(self, pipeline_name: str) -> str:
    """The configured gs:// pipeline root, or one per pipeline name."""
    return (self.pipeline_root or
            f'gs://{self.bucket}/pipeline_root/{pipeline_name}')

  def tracking_config(self, pipeline_name: str) -> Dict[str, Any]:
    """What models/tracking.py needs to log to Vertex AI Experiments."""
    config = {'project': self.project, 'location': self.region,
              'experiment': self.experiment or pipeline_name}
    if self.tensorboard:
      config['tensorboard'] = self.tensorboard
    if self.api_endpoint:  # the same endpoint as everything else
      config['api_endpoint'] = self.api_endpoint
      if is_rest_endpoint(self.api_endpoint):
        config['api_transport'] = 'rest'
    return config

  def trainer_custom_config(self, pipeline_name: str) -> Dict[str, Any]:
    """Keys the Vertex Trainer executor reads (plus tracking for run_fn)."""
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    ext = tfx.extensions.google_cloud_ai_platform
    config = {
        ext.ENABLE_VERTEX_KEY: True,
        ext.VERTEX_REGION_KEY: self.region,
        ext.TRAINING_ARGS_KEY: self.training_job_args(),
        TRACKING_KEY: self.tracking_config(pipeline_name),
    }
    if self.api_endpoint:
      config[TRAINING_API_ENDPOINT_KEY] = self.api_endpoint
    return config

  def registry_config(self) -> Optional[registry.RegistryConfig]:
    """The Model Registry push; None without a prediction image."""
    if not self.prediction_image:
      return None
    return registry.RegistryConfig(
        project=self.project, region=self.region,
        model_id=self.registry_model, serving_image=self.prediction_image,
        aliases=self.registry_aliases, labels=self.labels,
        endpoint=self.endpoint, api_endpoint=self.api_endpoint)


def is_rest_endpoint(api_endpoint: str) -> bool:
  """An http(s):// URL is spoken to over REST (a loopback stand-in); a host
  name (Private Service Connect) over gRPC, the clients' default."""
  return api_endpoint.startswith(('http://', 'https://'))


# The user-facing settings: one flag, FMNIST_* variable and file key each.
SETTINGS = {f.name: f for f in dataclasses.fields(VertexConfig)}


def for_vertex(base: configs.PipelineConfig,
               vertex: VertexConfig) -> configs.PipelineConfig:
  """The `PipelineConfig` compiled for Vertex: `base`'s knobs, gs:// paths.

  `base` carries what the two runners share (model config, thresholds,
  caching); paths, Beam arguments and the Vertex settings are replaced.
  """
  return dataclasses.replace(
      base, pipeline_root=vertex.pipeline_root_for(base.pipeline_name),
      data_root=vertex.data_root,
      schema_dir=vertex.schema_dir, serving_dir=vertex.serving_dir,
      metadata_path=None,
      beam_pipeline_args=vertex.beam_pipeline_args(base.beam_pipeline_args),
      vertex=vertex)


def load_file(path: str) -> Dict[str, Any]:
  """A YAML (or JSON) mapping whose keys are setting names."""
  import yaml  # pylint: disable=g-import-not-at-top
  try:
    with open(path, encoding='utf-8') as f:
      data = yaml.safe_load(f) or {}
  except OSError as e:
    raise configs.ConfigError(f'--config {path}: {e.strerror}') from None
  except yaml.YAMLError as e:
    raise configs.ConfigError(f'--config {path}: not YAML/JSON: {e}') from None
  if not isinstance(data, dict):
    raise configs.ConfigError(f'--config {path}: expected a mapping of '
                              'settings')
  data = {k.replace('-', '_'): v for k, v in data.items()}
  unknown = sorted(set(data) - set(SETTINGS))
  if unknown:
    raise configs.ConfigError(f'--config {path}: unknown keys {unknown}; '
                              f'known: {sorted(SETTINGS)}')
  return data


# --- conversion of flag/env/file values -------------------------------------

def _parse_bool(field: str, value: Any) -> bool:
  if isinstance(value, bool):
    return value
  text = str(value).strip().lower()
  if text in ('1', 'true', 'yes', 'on'):
    return True
  if text in ('0', 'false', 'no', 'off', ''):
    return False
  raise configs.ConfigError(f'{_where(field)}: {value!r} is not true/false')


def _parse_pairs(field: str, value: Any, what: str) -> Dict[str, str]:
  """`k=v,k2=v2` (env), a list of `k=v` (flags) or a mapping (file)."""
  if isinstance(value, Mapping):
    return {str(k): str(v) for k, v in value.items()}
  parts = value.split(',') if isinstance(value, str) else list(value)
  pairs = {}
  for part in (p.strip() for p in parts):
    if not part:
      continue
    if '=' not in part:
      raise configs.ConfigError(f'{_where(field)}: {what} {part!r} is not '
                                'KEY=VALUE')
    k, v = part.split('=', 1)
    pairs[k.strip()] = v.strip()  # the last of a repeated key wins
  return pairs


def _parse_labels(field: str, value: Any) -> Tuple[Tuple[str, str], ...]:
  """Job labels, checked against Vertex's rules for keys and values."""
  items = _parse_pairs(field, value, 'label').items()
  for k, v in items:
    if not _LABEL_KEY_RE.match(k) or not _LABEL_VALUE_RE.match(v):
      raise configs.ConfigError(
          f'{_where(field)}: label {k}={v} is invalid: keys and values use '
          'lowercase letters, digits, _ and -, at most 63 characters, keys '
          'start with a letter')
  return tuple(sorted(items))


def _parse_params(field: str, value: Any) -> Tuple[Tuple[str, str], ...]:
  """Runtime parameter overrides; names are checked against the known ones."""
  items = _parse_pairs(field, value, 'parameter').items()
  unknown = sorted(k for k, _ in items if k not in RUNTIME_PARAMETERS)
  if unknown:
    raise configs.ConfigError(
        f'{_where(field)}: unknown runtime parameter(s) {", ".join(unknown)}; '
        f'known: {", ".join(sorted(RUNTIME_PARAMETERS))}')
  for k, v in items:
    if k == 'data_root' and (not v.startswith('gs://') or
                             len(v) <= len('gs://')):
      raise configs.ConfigError(
          f'{_where(field)}: data_root={v!r} must be a gs:// path; Vertex AI '
          'workers cannot read local paths')
  return tuple(sorted((k, v.rstrip('/')) for k, v in items))


def _convert(field: str, value: Any) -> Any:
  """Turns a flag/env/file value into the field's type."""
  default = SETTINGS[field].default
  if field == 'labels':
    return _parse_labels(field, value)
  if field == 'params':
    return _parse_params(field, value)
  if field == 'registry_aliases':  # a,b (flag, env) or a list (file)
    parts = value.split(',') if isinstance(value, str) else list(value)
    return tuple(str(p).strip() for p in parts if str(p).strip())
  if isinstance(default, bool):
    return _parse_bool(field, value)
  try:
    if isinstance(default, int):
      return int(value)
    if isinstance(default, float):
      return float(value)
  except (TypeError, ValueError):
    raise configs.ConfigError(
        f'{_where(field)}: {value!r} is not a number') from None
  return str(value) if value is not None else None


# --- validation ---------------------------------------------------------------

def _strip_bucket(bucket: str) -> str:
  return bucket[len('gs://'):].rstrip('/') if bucket.startswith(
      'gs://') else bucket.rstrip('/')


def _require_gcs(field: str, value: str) -> str:
  if not value.startswith('gs://') or len(value) <= len('gs://'):
    raise configs.ConfigError(
        f'{_where(field)}: {value!r} must be a gs:// path; Vertex AI workers '
        'cannot read local paths')
  return value.rstrip('/')


def check_image_uri(field: str, image: str) -> str:
  """A well-formed image reference with a valid tag (or digest)."""
  m = _IMAGE_RE.match(image)
  if not m:
    raise configs.ConfigError(
        f'{_where(field)}: {image!r} is not an image reference like '
        'REGION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE:TAG')
  tag = m.group('tag')
  if tag is None and m.group('digest') is None:
    raise configs.ConfigError(
        f'{_where(field)}: {image!r} has no tag; pin one (e.g. the commit SHA '
        'Cloud Build pushed) so every run uses the code it was compiled with')
  if tag is not None and not _TAG_RE.match(tag):
    raise configs.ConfigError(f'{_where(field)}: image tag {tag!r} is invalid '
                              '(letters, digits, _ . -, at most 128)')
  return image


def _validate(s: VertexConfig) -> Dict[str, Any]:
  """Checks `s`; returns the derived values to fill in (names -> values)."""
  if not s.project:
    raise configs.ConfigError(f'{_where("project")} is required: the GCP '
                              'project ID to run in')
  if not _PROJECT_RE.match(s.project):
    raise configs.ConfigError(
        f'{_where("project")}: {s.project!r} is not a project ID (6-30 '
        'lowercase letters, digits or hyphens, starting with a letter)')
  if not s.region:
    raise configs.ConfigError(f'{_where("region")} is required, e.g. '
                              'us-central1')
  if not _REGION_RE.match(s.region):
    raise configs.ConfigError(f'{_where("region")}: {s.region!r} is not a '
                              'region like us-central1 or europe-west4')
  from google.cloud.aiplatform.constants import base as aip_constants  # pylint: disable=g-import-not-at-top
  if s.region not in aip_constants.SUPPORTED_REGIONS:
    raise configs.ConfigError(
        f'{_where("region")}: Vertex AI does not run in {s.region!r}; use one '
        f'of {", ".join(sorted(aip_constants.SUPPORTED_REGIONS))}')
  pipeline_root = s.pipeline_root and _require_gcs('pipeline_root',
                                                   s.pipeline_root)
  bucket = s.bucket
  if not bucket and pipeline_root:
    bucket = pipeline_root[len('gs://'):].split('/', 1)[0]
  if not bucket:
    raise configs.ConfigError(f'{_where("bucket")} is required (or a gs:// '
                              f'{_where("pipeline_root")})')
  bucket = _strip_bucket(bucket)
  if not _BUCKET_RE.match(bucket) or '..' in bucket:
    raise configs.ConfigError(
        f'{_where("bucket")}: {bucket!r} is not a bucket name (lowercase '
        'letters, digits, - _ .; no gs:// needed)')
  data_root = _require_gcs('data_root', s.data_root or f'gs://{bucket}/data')
  serving_dir = _require_gcs('serving_dir',
                             s.serving_dir or f'gs://{bucket}/serving_model')

  if s.image:
    image = check_image_uri('image', s.image)
  elif s.repository and s.image_tag:
    if not _TAG_RE.match(s.image_tag):
      raise configs.ConfigError(f'{_where("image_tag")}: {s.image_tag!r} is '
                                'not a valid tag')
    image = check_image_uri(
        'image', f'{s.region}-docker.pkg.dev/{s.project}/{s.repository}/'
        f'{PIPELINE_IMAGE_NAME}:{s.image_tag}')
  else:
    raise configs.ConfigError(
        f'{_where("image")} is required (the pipeline image Cloud Build '
        f'pushed), or give {_where("repository")} and {_where("image_tag")}')
  training_image = (check_image_uri('training_image', s.training_image)
                    if s.training_image else image)

  for field in ('service_account', 'training_service_account'):
    value = getattr(s, field)
    if value and not _SA_RE.match(value):
      raise configs.ConfigError(
          f'{_where(field)}: {value!r} is not a service account email like '
          'NAME@PROJECT.iam.gserviceaccount.com')
  if s.dataflow_max_workers < 1:
    raise configs.ConfigError(f'{_where("dataflow_max_workers")} must be >= 1')
  if s.accelerator_type:
    if not _ACCELERATOR_RE.match(s.accelerator_type):
      raise configs.ConfigError(
          f'{_where("accelerator_type")}: {s.accelerator_type!r} is not a '
          'Vertex accelerator such as NVIDIA_TESLA_T4 or NVIDIA_L4')
    if s.accelerator_count < 1:
      raise configs.ConfigError(f'{_where("accelerator_count")} must be >= 1 '
                                'with an accelerator type')
  elif s.accelerator_count:
    raise configs.ConfigError(f'{_where("accelerator_count")} needs '
                              f'{_where("accelerator_type")}')
  if s.endpoint and not s.prediction_image:
    raise configs.ConfigError(
        f'{_where("endpoint")} needs {_where("prediction_image")}: a Vertex '
        'prebuilt TensorFlow prediction image matching TF 2.16')
  if s.prediction_image:
    check_image_uri('prediction_image', s.prediction_image)
  registry.check_model_id(s.registry_model, _where('registry_model'))
  registry_aliases = registry.check_aliases(s.registry_aliases,
                                            _where('registry_aliases'))
  if s.poll_seconds <= 0:
    raise configs.ConfigError(f'{_where("poll_seconds")} must be positive')
  return dict(
      bucket=bucket, pipeline_root=pipeline_root, data_root=data_root,
      serving_dir=serving_dir, image=image, training_image=training_image,
      training_service_account=(s.training_service_account or
                                s.service_account),
      registry_aliases=registry_aliases)
