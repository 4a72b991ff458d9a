"""Blessed models as versions of one Vertex AI Model Registry model.

TFX 1.16's Vertex Pusher (`google_cloud_ai_platform/pusher/executor.py`)
uploads every blessed model as a new, unrelated model named `v<timestamp>`
(its own "TODO: Introduce Versioning") with no labels, then deploys it. Here a
push is a new *version* of one registry model found by a stable model ID:

- the first push uploads version 1 with `model_id=<registry_model>`; later
  pushes upload with `parent_model=<registry_model>`, `is_default_version=True`;
- the version is labelled with the span it was trained on, its test accuracy
  and the pipeline run that produced it;
- the aliases (`blessed`, `serving` by default) are then moved to it with
  `mergeVersionAliases` (an alias names one version of a model at a time;
  merging it onto a version takes it off the one that had it);
- if an Endpoint is configured, the version is deployed there with all traffic;
- a retried push of the model that is already the default version (same
  artifact URI) uploads nothing and deploys nothing twice.

`RegistryPusherExecutor` is the Pusher executor that does this on Vertex;
`register()` is the part that talks to Vertex, callable on its own.
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from pipeline import configs

# custom_config key of the registry pusher (a JSON-able dict).
REGISTRY_KEY = 'model_registry'
DEFAULT_ALIASES = ('blessed', 'serving')
DEFAULT_MACHINE_TYPE = 'n1-standard-2'
# Vertex's rules: a model ID is up to 63 of [a-z0-9_-], not starting with a
# digit or hyphen; an alias is 2-128 of [a-zA-Z0-9-], starting with a
# lowercase letter and ending with a lowercase letter, digit or hyphen.
_MODEL_ID_RE = re.compile(r'^[a-z_][a-z0-9_-]{0,62}$')
_ALIAS_RE = re.compile(r'^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$')
_LABEL_VALUE_BAD = re.compile(r'[^a-z0-9_-]')
# Vertex lays out artifacts as ROOT/PROJECT_NUMBER/JOB_NAME/TASK/OUTPUT.
_VERTEX_URI_RE = re.compile(r'/(\d+)/([a-z0-9][a-z0-9-]*)/[^/]+/')


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
  """Where and how a blessed model is registered; validated on construction."""
  project: str
  region: str
  model_id: str                 # the one registry model (also its display name)
  serving_image: str            # the prediction container the model runs in
  aliases: Tuple[str, ...] = DEFAULT_ALIASES
  labels: Tuple[Tuple[str, str], ...] = ()  # on every version, e.g. team=ml
  endpoint: Optional[str] = None  # Endpoint display name to deploy to
  machine_type: str = DEFAULT_MACHINE_TYPE
  api_endpoint: Optional[str] = None  # e.g. a Private Service Connect host

  def __post_init__(self):
    object.__setattr__(self, 'aliases', check_aliases(self.aliases))
    check_model_id(self.model_id)
    if not self.serving_image:
      raise configs.ConfigError('the model registry needs a serving image '
                                '(--prediction-image)')

  def to_custom_config(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d['aliases'] = list(self.aliases)
    d['labels'] = dict(self.labels)
    return d

  @classmethod
  def from_custom_config(cls, d: Mapping[str, Any]) -> 'RegistryConfig':
    d = dict(d)
    d['aliases'] = tuple(d.get('aliases', DEFAULT_ALIASES))
    d['labels'] = tuple(sorted(dict(d.get('labels') or {}).items()))
    return cls(**d)


def check_model_id(model_id: str,
                   where: str = '--registry-model (or FMNIST_REGISTRY_MODEL)'
                   ) -> str:
  if not model_id or not _MODEL_ID_RE.match(model_id):
    raise configs.ConfigError(
        f'{where}: {model_id!r} is not a Vertex model ID (up to 63 lowercase '
        'letters, digits, _ or -, not starting with a digit or -)')
  return model_id


def check_aliases(aliases, where: str = '--registry-aliases (or '
                  'FMNIST_REGISTRY_ALIASES)') -> Tuple[str, ...]:
  """Vertex's alias rules, checked before any call; duplicates dropped."""
  out = []
  for alias in aliases:
    if alias == 'default':
      raise configs.ConfigError(
          f'{where}: "default" is managed by Vertex (every new version takes '
          'it); choose another alias')
    if not _ALIAS_RE.match(alias) or alias.isdigit():
      raise configs.ConfigError(
          f'{where}: alias {alias!r} is invalid: 2-128 letters, digits or -, '
          'starting with a lowercase letter and ending with a lowercase '
          'letter, digit or -')
    if alias not in out:
      out.append(alias)
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class Provenance:
  """What a version's labels say about it."""
  span: Optional[int] = None
  accuracy: Optional[float] = None
  run: Optional[str] = None

  def labels(self) -> Dict[str, str]:
    out = {}
    if self.span is not None:
      out['span'] = str(self.span)
    if self.accuracy is not None:  # label values allow no '.': 0.9399 -> 0-9399
      out['accuracy'] = f'{self.accuracy:.4f}'.replace('.', '-')
    if self.run:
      out['pipeline_run'] = _LABEL_VALUE_BAD.sub('-', self.run.lower())[:63]
    return out


@dataclasses.dataclass(frozen=True)
class Registered:
  model: str          # projects/P/locations/R/models/ID
  version_id: str
  aliases: Tuple[str, ...]
  deployed_to: Optional[str] = None  # the Endpoint's resource name
  uploaded: bool = True  # False: this model was already the newest version

  @property
  def versioned_name(self) -> str:
    return f'{self.model}@{self.version_id}'


def run_from_uri(uri: str) -> Optional[str]:
  """The pipeline job name in a Vertex artifact URI, if it has the layout."""
  m = _VERTEX_URI_RE.search(uri)
  return m.group(2) if m else None


def register(cfg: RegistryConfig, artifact_uri: str, provenance: Provenance,
             credentials=None) -> Registered:
  """Uploads `artifact_uri` (a gs:// SavedModel) as the newest version."""
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  aiplatform.init(project=cfg.project, location=cfg.region,
                  credentials=credentials, api_endpoint=cfg.api_endpoint,
                  api_transport='rest')
  try:
    current = aiplatform.Model(model_name=cfg.model_id)  # the default version
  except exceptions.NotFound:
    current = None
  if current is not None and current.uri == artifact_uri:
    # A retried push of the model already registered: no second version.
    model, uploaded = current, False
  else:
    parent = ({'parent_model': cfg.model_id} if current is not None else
              {'model_id': cfg.model_id})
    model, uploaded = aiplatform.Model.upload(
        display_name=cfg.model_id, artifact_uri=artifact_uri,
        serving_container_image_uri=cfg.serving_image,
        is_default_version=True,
        labels={**dict(cfg.labels), **provenance.labels()},
        version_description=_description(provenance), **parent), True
  if cfg.aliases:
    model.versioning_registry.add_version_aliases(list(cfg.aliases),
                                                  version=model.version_id)
  deployed_to = None
  if cfg.endpoint:
    endpoint = _endpoint(aiplatform, cfg, dict(cfg.labels), credentials)
    versioned = f'{model.resource_name}@{model.version_id}'
    if not any(d.model == versioned
               for d in endpoint.gca_resource.deployed_models):
      model.deploy(endpoint=endpoint, machine_type=cfg.machine_type,
                   traffic_percentage=100)
    deployed_to = endpoint.resource_name
  return Registered(model=model.resource_name, version_id=model.version_id,
                    aliases=cfg.aliases, deployed_to=deployed_to,
                    uploaded=uploaded)


def _description(p: Provenance) -> str:
  parts = [f'span {p.span}' if p.span is not None else None,
           f'test accuracy {p.accuracy:.4f}' if p.accuracy is not None
           else None, f'pipeline run {p.run}' if p.run else None]
  return 'Blessed model: ' + ', '.join(x for x in parts if x)


def _endpoint(aiplatform, cfg: RegistryConfig, labels: Dict[str, str],
              credentials):
  """The Endpoint named `cfg.endpoint`, created if there is none.

  Listed with the GAPIC client rather than `aiplatform.Endpoint.list`: over
  REST, once a long-running operation in the same process has returned an
  Endpoint, the SDK's list filter (`not ep.private_service_connect_config`)
  sees raw protobuf messages, which are always true, and drops every
  Endpoint (google-cloud-aiplatform 1.70; seen against the loopback server).
  """
  from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
  client = aiplatform_v1.EndpointServiceClient(
      credentials=credentials or aiplatform.initializer.global_config
      .credentials, transport='rest',
      client_options={'api_endpoint': cfg.api_endpoint or
                      f'{cfg.region}-aiplatform.googleapis.com'})
  found = client.list_endpoints(request={
      'parent': f'projects/{cfg.project}/locations/{cfg.region}',
      'filter': f'display_name="{cfg.endpoint}"'})
  for endpoint in found:
    return aiplatform.Endpoint(endpoint.name)
  return aiplatform.Endpoint.create(display_name=cfg.endpoint, labels=labels)


def read_provenance(blessing_uri: str, model_uri: str,
                    run_id: Optional[str] = None) -> Provenance:
  """Span and accuracy from the Blessing's decision file, run from the URI."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pipeline import blessing  # pylint: disable=g-import-not-at-top
  path = os.path.join(blessing_uri, blessing.DECISION_FILE)
  decision = {}
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      decision = json.load(f)
  accuracy = decision.get('numbers', {}).get('accuracy')
  return Provenance(span=decision.get('span'),
                    accuracy=float(accuracy) if accuracy is not None else None,
                    run=run_id or run_from_uri(model_uri))
