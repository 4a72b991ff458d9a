"""A loopback HTTP server that speaks enough of Vertex AI's REST API (v1).

The real `google-cloud-aiplatform` SDK is pointed at it with
`api_endpoint='http://127.0.0.1:PORT'`, `api_transport='rest'` and anonymous
credentials, so tests see the exact requests the SDK sends. Resources are kept
generically: `POST <collection>?<kind>Id=ID` creates `<collection>/ID`, `GET`
reads it (404 in Google's error format otherwise), `PATCH` merges, and
`POST <name>:<verb>` answers `{}`. Pipeline jobs walk through `job_states`.
A CustomJob (Vertex Training) runs its worker pool's container command here,
with this Python for the image's `python`, and ends SUCCEEDED or FAILED with
Vertex's error text. `POST /token` is an OAuth token endpoint, for task
processes whose credentials file names it as its `token_uri`.
It also answers Docker Registry v2 manifest HEADs for `known_images`, and the
GCS bucket lookup PipelineJob.submit makes (via STORAGE_EMULATOR_HOST).
"""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from typing import Any, Dict, List, Optional

import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order


# Collections whose create is a long-running operation, and their types.
_LRO_TYPES = {'metadataStores': 'MetadataStore', 'tensorboards': 'Tensorboard'}


class FakeVertex(loopback.Loopback):
  """Start with `with FakeVertex() as fake:`; inspect `fake.requests`."""

  def __init__(self, job_states: Optional[List[str]] = None):
    self.requests: List[Dict[str, Any]] = []
    self.resources: Dict[str, Dict[str, Any]] = {}
    self.job_states = list(job_states or ['PIPELINE_STATE_SUCCEEDED'])
    self.job_error: Optional[str] = None
    self.reject_create: Optional[tuple] = None  # (http status, message)
    self.known_images: set = set()  # "name:tag" served by /v2/.../manifests
    self.training_error: Optional[str] = None     # AutoML pipelines fail so
    self.automl_evaluation: Optional[Dict[str, Any]] = None
    self.model_evaluations: Dict[str, List[Dict[str, Any]]] = {}
    # Model Registry: model name -> its versions (dicts), oldest first.
    self.model_versions: Dict[str, List[Dict[str, Any]]] = {}
    # Vertex Training: CustomJob name -> its container's output, when done.
    self.custom_job_logs: Dict[str, str] = {}
    self.custom_job_cwd: Optional[str] = None
    self._counter = 0
    self._lock = threading.Lock()
    fake = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):  # keep pytest output clean
        del args

      def _body(self):
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        try:
          return json.loads(raw) if raw else None
        except ValueError:
          return raw.decode('utf-8', 'replace')

      def _reply(self, status: int, payload: Any = None):
        data = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
          self.wfile.write(data)

      def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = self._body()
        with fake._lock:  # pylint: disable=protected-access
          fake.requests.append({'method': self.command, 'path': url.path,
                                'query': query, 'body': body,
                                'headers': dict(self.headers)})
          status, payload = fake.respond(self.command, url.path, query, body)
        self._reply(status, payload)

      do_GET = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

    super().__init__(Handler)
    self.endpoint = self.url
    self.host = f'127.0.0.1:{self.port}'

  # -- responses -------------------------------------------------------------

  @staticmethod
  def _error(status: int, message: str, reason: str):
    return status, {'error': {'code': status, 'message': message,
                              'status': reason}}

  def _next_id(self) -> str:
    self._counter += 1
    return str(1000 + self._counter)

  def respond(self, method: str, path: str, query: Dict[str, str], body: Any):
    if path.startswith('/v2/'):  # Docker Registry v2: HEAD manifests/<ref>
      name, _, ref = path[len('/v2/'):].partition('/manifests/')
      if f'{name}:{ref}' in self.known_images:
        return 200, {}
      return self._error(404, 'manifest unknown', 'NOT_FOUND')
    if path.startswith('/storage/v1/b/'):  # GCS JSON API (bucket exists)
      return 200, {'name': path.split('/')[4]}
    if path == '/token' and method == 'POST':  # OAuth 2.0 token endpoint
      return 200, {'access_token': 'loopback-token', 'expires_in': 3600,
                   'token_type': 'Bearer'}
    if not path.startswith('/v1/'):
      return self._error(404, f'no such API {path}', 'NOT_FOUND')
    name = path[len('/v1/'):]
    automl = self._automl(method, urllib.parse.unquote(name), body)
    if automl is not None:
      return automl
    registry = self._registry(method, urllib.parse.unquote(name), query, body)
    if registry is not None:
      return registry
    if method == 'POST' and ':' in name.rsplit('/', 1)[-1]:
      return 200, {}
    if method == 'POST' and name.endswith('/customJobs'):
      return self._custom_job(name, body or {})
    if method == 'POST':
      return self._create(name, query, body or {})
    if method == 'GET':
      if name in self.resources:
        return 200, self._read(name)
      if name.rsplit('/', 1)[-1] in ('contexts', 'artifacts', 'executions',
                                     'tensorboards', 'experiments', 'runs',
                                     'timeSeries', 'pipelineJobs'):
        return 200, {}  # empty list
      return self._error(404, f'{name} not found', 'NOT_FOUND')
    if method == 'PATCH':
      if name not in self.resources:
        return self._error(404, f'{name} not found', 'NOT_FOUND')
      self.resources[name].update(body or {})
      return 200, self.resources[name]
    if method == 'DELETE':
      self.resources.pop(name, None)
      return 200, {'name': f'{name}/operations/1', 'done': True}
    return self._error(400, f'unsupported {method}', 'INVALID_ARGUMENT')

  def _create(self, collection: str, query: Dict[str, str], body: Dict):
    kind = collection.rsplit('/', 1)[-1]
    id_param = next((v for k, v in query.items() if k.endswith('Id')), None)
    if kind == 'pipelineJobs' and self.reject_create:
      status, message = self.reject_create
      return self._error(status, message, 'INVALID_ARGUMENT')
    name = f'{collection}/{id_param or self._next_id()}'
    if name in self.resources and kind != 'pipelineJobs':
      return self._error(409, f'{name} already exists', 'ALREADY_EXISTS')
    resource = dict(body, name=name)
    if kind == 'pipelineJobs':
      resource['state'] = 'PIPELINE_STATE_PENDING'
    self.resources[name] = resource
    if kind in _LRO_TYPES:  # a long-running operation, already done
      return 200, {'name': f'{name}/operations/1', 'done': True,
                   'response': dict(resource, **{
                       '@type': 'type.googleapis.com/google.cloud.aiplatform.'
                                f'v1.{_LRO_TYPES[kind]}'})}
    return 200, resource

  # -- Vertex Training: CustomJobs run their container command here -----------

  def _custom_job(self, collection: str, body: Dict[str, Any]):
    (pool, *_) = body.get('jobSpec', {}).get('workerPoolSpecs') or [{}]
    container = pool.get('containerSpec', {})
    words = list(container.get('command', [])) + list(container.get('args', []))
    if not words or not container.get('imageUri'):
      return self._error(400, 'workerPoolSpecs[0].containerSpec needs '
                         'imageUri and a command', 'INVALID_ARGUMENT')
    name = f'{collection}/{self._next_id()}'
    job = dict(body, name=name, state='JOB_STATE_PENDING')
    self.resources[name] = job
    threading.Thread(target=self._run_custom_job, args=(name, words),
                     daemon=True).start()
    return 200, job

  def _run_custom_job(self, name: str, words: List[str]) -> None:
    if words[0] in ('python', 'python3'):  # the image's Python: this one
      words = [sys.executable] + words[1:]
    with self._lock:
      self.resources[name]['state'] = 'JOB_STATE_RUNNING'
    proc = subprocess.run(words, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, cwd=self.custom_job_cwd,
                          env=dict(os.environ), check=False)
    output = proc.stdout.decode('utf-8', 'replace')
    with self._lock:
      self.custom_job_logs[name] = output
      job = self.resources[name]
      if proc.returncode == 0:
        job['state'] = 'JOB_STATE_SUCCEEDED'
      else:
        tail = '\n'.join(output.splitlines()[-10:])
        job.update(state='JOB_STATE_FAILED', error={
            'code': 3, 'message': 'The replica workerpool0-0 exited with a '
            f'non-zero status of {proc.returncode}.\n{tail}'})

  def _read(self, name: str) -> Dict[str, Any]:
    resource = self.resources[name]
    if '/pipelineJobs/' in name and self.job_states:
      resource['state'] = self.job_states.pop(0)
      if resource['state'] == 'PIPELINE_STATE_FAILED' and self.job_error:
        resource['error'] = {'code': 9, 'message': self.job_error}
    return resource

  def bodies(self, method: str, path_part: str) -> List[Any]:
    return [r['body'] for r in self.requests
            if r['method'] == method and path_part in r['path']]

  # -- AutoML: datasets + import, training pipelines, model evaluations -------
  # A dataset's create and :import are done long-running operations; a
  # training pipeline succeeds at once (or fails with `training_error`) and
  # uploads a model whose evaluation list is `automl_evaluation` (one
  # ModelEvaluation's JSON, e.g. a confusion matrix), if set.

  def _automl(self, method: str, name: str, body: Any):
    parent, _, last = name.rpartition('/')
    if method == 'POST' and last == 'datasets':
      dataset = dict(body or {}, name=f'{name}/{self._next_id()}')
      self.resources[dataset['name']] = dataset
      return self._lro(dataset['name'], 'Dataset', dataset)
    if method == 'POST' and last.endswith(':import') and '/datasets/' in name:
      return self._lro(name, 'ImportDataResponse', {})
    if method == 'POST' and last == 'trainingPipelines':
      pipeline = dict(body or {}, name=f'{name}/{self._next_id()}')
      if self.training_error:
        pipeline.update(state='PIPELINE_STATE_FAILED', error={
            'code': 9, 'message': self.training_error})
      else:
        model = f'{parent}/models/{self._next_id()}'
        self.model_versions[model] = [dict(
            (body or {}).get('modelToUpload') or {}, name=model,
            versionId='1', versionAliases=['default'], labels={})]
        self.model_evaluations[model] = (
            [dict(self.automl_evaluation, name=f'{model}/evaluations/1')]
            if self.automl_evaluation else [])
        pipeline.update(state='PIPELINE_STATE_SUCCEEDED',
                        modelToUpload={'name': model, 'versionId': '1'})
      self.resources[pipeline['name']] = pipeline
      return 200, pipeline
    model = parent.partition('@')[0]
    if method == 'GET' and last == 'evaluations' and model in self.model_versions:
      return 200, {'modelEvaluations': self.model_evaluations.get(model, [])}
    return None

  # -- Model Registry and Endpoints ------------------------------------------
  # models:upload (a long-running operation; `parentModel` adds a version),
  # models/ID[@VERSION|@ALIAS] reads, :mergeVersionAliases (an alias is on
  # one version at a time), endpoints list/create/:deployModel.

  _ALIAS_RE = re.compile(r'^-?[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$')

  @staticmethod
  def _lro(name: str, kind: str, response: Dict[str, Any]):
    return 200, {'name': f'{name}/operations/1', 'done': True,
                 'response': dict(response, **{
                     '@type': f'type.googleapis.com/google.cloud.aiplatform.'
                              f'v1.{kind}'})}

  def model_version(self, model: str, ref: str = 'default') -> Dict[str, Any]:
    """A version of `model` (full name) by version ID or alias."""
    for version in self.model_versions.get(model, []):
      if ref == version['versionId'] or ref in version['versionAliases']:
        return version
    raise KeyError(f'{model}@{ref}')

  def _registry(self, method: str, name: str, query: Dict[str, str],
                body: Any):
    """Answers Model Registry and Endpoint calls; None for anything else."""
    parent, _, last = name.rpartition('/')
    if method == 'POST' and last == 'models:upload':
      return self._upload(parent, body or {})
    if '/models/' in name:
      model, _, rest = name.partition('@')
      ref, _, verb = rest.partition(':')
      if not rest and ':' in model.rsplit('/', 1)[-1]:
        model, _, verb = model.rpartition(':')
      if model not in self.model_versions:
        return self._error(404, f'{model} not found', 'NOT_FOUND')
      try:
        version = self.model_version(model, ref or 'default')
      except KeyError:
        return self._error(404, f'{model}@{ref} not found', 'NOT_FOUND')
      if method == 'GET' and not verb:
        return 200, version
      if method == 'POST' and verb == 'mergeVersionAliases':
        return self._merge_aliases(model, version, (body or {}).get(
            'versionAliases', []))
      return None
    if last == 'endpoints' and method == 'GET':
      wanted = re.findall(r'display_name="([^"]*)"', query.get('filter', ''))
      found = [r for n, r in self.resources.items()
               if n.startswith(f'{name}/') and '/' not in n[len(name) + 1:]
               and (not wanted or r.get('displayName') in wanted)]
      return 200, {'endpoints': found}
    if last == 'endpoints' and method == 'POST':
      endpoint = dict(body or {}, name=f'{name}/{self._next_id()}',
                      deployedModels=[], trafficSplit={})
      self.resources[endpoint['name']] = endpoint
      return self._lro(endpoint['name'], 'Endpoint', endpoint)
    if method == 'POST' and last.endswith(':deployModel'):
      endpoint = self.resources.get(name[:-len(':deployModel')])
      if endpoint is None:
        return self._error(404, f'{name} not found', 'NOT_FOUND')
      deployed = dict((body or {})['deployedModel'], id=self._next_id())
      endpoint['deployedModels'].append(deployed)
      endpoint['trafficSplit'] = {deployed['id']: 100}
      return self._lro(endpoint['name'], 'DeployModelResponse',
                       {'deployedModel': deployed})
    return None

  def _upload(self, location: str, body: Dict[str, Any]):
    model = dict(body.get('model') or {})
    parent = body.get('parentModel')
    aliases = list(model.get('versionAliases') or [])
    bad = [a for a in aliases if not self._ALIAS_RE.match(a) or a[0] == '-']
    if bad:
      return self._error(400, f'invalid version aliases {bad}',
                         'INVALID_ARGUMENT')
    if parent:
      if parent not in self.model_versions:
        return self._error(404, f'parent model {parent} not found',
                           'NOT_FOUND')
      name = parent
    else:
      name = f'{location}/models/{body.get("modelId") or self._next_id()}'
      if name in self.model_versions:
        return self._error(409, f'{name} already exists', 'ALREADY_EXISTS')
      self.model_versions[name] = []
    versions = self.model_versions[name]
    version = dict(model, name=name, versionId=str(len(versions) + 1),
                   versionAliases=[], labels=model.get('labels', {}),
                   supportedDeploymentResourcesTypes=['DEDICATED_RESOURCES'])
    if not versions:
      aliases = aliases if 'default' in aliases else aliases + ['default']
    versions.append(version)
    if aliases:
      self._merge_aliases(name, version, aliases)
    return self._lro(f'{name}@{version["versionId"]}', 'UploadModelResponse',
                     {'model': name, 'modelVersionId': version['versionId']})

  def _merge_aliases(self, model: str, version: Dict[str, Any], aliases):
    bad = [a for a in aliases if not self._ALIAS_RE.match(a)]
    if bad or not aliases:
      return self._error(400, f'invalid version aliases {bad}',
                         'INVALID_ARGUMENT')
    for alias in aliases:
      if alias.startswith('-'):
        if alias[1:] == 'default':
          return self._error(400, 'the default alias cannot be removed',
                             'INVALID_ARGUMENT')
        if alias[1:] in version['versionAliases']:
          version['versionAliases'].remove(alias[1:])
        continue
      for other in self.model_versions[model]:  # moves from its holder
        if alias in other['versionAliases']:
          other['versionAliases'].remove(alias)
      version['versionAliases'].append(alias)
    return 200, version
