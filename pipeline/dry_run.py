"""Runs a compiled Vertex PipelineJob spec on this machine, task by task.

The spec under test is the JSON `fmnist pipeline compile --runner vertex`
writes. For each task, in the DAG's order, this builds the `ExecutorInput`
Vertex AI Pipelines would pass (input artifacts with name, type schema, uri
and metadata; parameters; output artifact URIs under the pipeline root; the
`outputFile`), substitutes it for `{{$}}` in the task's own container
`command`/`args` (and its `lifecycle.preCacheCheck` driver, for
FileBasedExampleGen), runs that as a subprocess with this project's Python
standing in for the pipeline image, reads the task's `executor_output.json`
and carries the artifacts' metadata downstream. Resolver and importer tasks
are evaluated over the artifacts of earlier dry runs under the same root
(`pipeline/dry_run_store.py`); task caching follows `cachingOptions`.

Stand-ins, each for something that exists only on GCP: `gs://BUCKET/...` is
the directory `ROOT/gcs/BUCKET/...`; the image's `/opt/fmnist` is this
repository; the image's `python` is this interpreter. The Trainer's Vertex
Training task runs only when the spec was compiled with a loopback
`--api-endpoint` (a stand-in that speaks Vertex's API, as the tests' fake
does, running the CustomJob's own container command); specs with other
tasks that call Google services (Dataflow, the Model Registry push, public
Vertex) are refused with the flags that compile a spec which runs here.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import yaml

from pipeline import configs
from pipeline import dry_run_store
from pipeline import vertex_config
from pipeline.errors import UserError

_ENTRYPOINT = 'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor'
_GOOGLE_EXTENSIONS = 'tfx.extensions.google_cloud_ai_platform.'
# This project's executors that call Vertex AI through `--api-endpoint`.
_VERTEX_EXECUTORS = ('pipeline.vertex_training.Executor',)
# Ones a dry run cannot stand in for, and why.
_NOT_HERE = {
    'pipeline.registry_pusher.RegistryPusherExecutor':
        'registers the model\'s gs:// directory with Vertex; here that '
        'directory is local, and the SDK would upload it to a staging bucket '
        'instead (tests/vertex/test_registry.py tests the push against the '
        'loopback Vertex); compile the spec for a dry run without '
        '--prediction-image',
}
_PLACEHOLDER_RE = re.compile(r'\{\{\$(?P<path>[^}]*)\}\}')
_INPUT_METADATA_RE = re.compile(
    r"\{\{\$\.inputs\.artifacts\['(?P<input>[^']+)'\]\.metadata\['"
    r"(?P<key>[^']+)'\]\}\}")
_STDERR_TAIL_LINES = 25


class DryRunError(UserError):
  """The spec cannot be dry-run as given (missing, malformed, bad --param)."""


class TaskFailed(DryRunError):
  """A task's container exited non-zero: the task and its stderr tail."""

  def __init__(self, task: str, returncode: int, log_path: str, tail: str):
    self.task, self.returncode, self.log_path = task, returncode, log_path
    super().__init__(f'task {task} failed (exit {returncode}); the last lines '
                     f'of its output ({log_path}):\n{tail}')


@dataclasses.dataclass(frozen=True)
class DryRunConfig:
  """What to run: the compiled spec, the local root, parameter overrides."""
  spec_path: str
  root: str
  params: Tuple[Tuple[str, str], ...] = ()
  enable_cache: bool = True   # honour the spec's cachingOptions, as Vertex does
  parallelism: int = 2        # containers at once (Vertex runs all ready ones)
  python: str = sys.executable  # stands in for the image's `python`


@dataclasses.dataclass(frozen=True)
class TaskResult:
  name: str
  kind: str        # 'container', 'resolver' or 'importer'
  state: str       # 'ran', 'cached' or 'resolved'
  seconds: float
  outputs: Dict[str, List[dry_run_store.Artifact]]
  command: Tuple[str, ...] = ()  # the container's command as run (no input)


@dataclasses.dataclass(frozen=True)
class DryRunResult:
  run_id: str
  tasks: Tuple[TaskResult, ...]
  pushed_to: Optional[str]   # local directory of the pushed model version

  def task(self, name: str) -> TaskResult:
    return next(t for t in self.tasks if t.name == name)


# --- the spec ---------------------------------------------------------------

def load_spec(path: str) -> Dict[str, Any]:
  try:
    with open(path, encoding='utf-8') as f:
      spec = json.load(f)
  except OSError as e:
    raise DryRunError(f'--spec {path}: {e.strerror}') from None
  except ValueError as e:
    raise DryRunError(f'--spec {path}: not JSON: {e}') from None
  if not isinstance(spec, dict) or 'root' not in spec.get('pipelineSpec', {}):
    raise DryRunError(f'--spec {path}: not a PipelineJob spec (no '
                      'pipelineSpec.root); write one with `fmnist pipeline '
                      'compile --runner vertex`')
  return spec


def _schema_title(artifact_type: Mapping[str, Any]) -> str:
  if 'schemaTitle' in artifact_type:
    return artifact_type['schemaTitle']
  return (yaml.safe_load(artifact_type.get('instanceSchema', '')) or {}).get(
      'title', 'tfx.Artifact')


def _upstream(tasks: Mapping[str, Any]) -> Dict[str, set]:
  """Task -> the tasks it waits for (dependentTasks and artifact producers)."""
  upstream = {}
  for name, task in tasks.items():
    deps = set(task.get('dependentTasks', []))
    for spec in task.get('inputs', {}).get('artifacts', {}).values():
      producer = spec.get('taskOutputArtifact', {}).get('producerTask')
      if producer:
        deps.add(producer)
    upstream[name] = deps
  return upstream


def _parameter_values(spec: Mapping[str, Any],
                      overrides: Mapping[str, str]) -> Dict[str, Dict]:
  """Root parameters: runtimeConfig's values, then --param (as Values)."""
  declared = spec['pipelineSpec']['root'].get('inputDefinitions', {}).get(
      'parameters', {})
  values = dict(spec.get('runtimeConfig', {}).get('parameters', {}))
  unknown = sorted(set(overrides) - set(declared))
  if unknown:
    raise DryRunError(f'--param: unknown runtime parameter(s) '
                      f'{", ".join(unknown)}; the spec declares: '
                      f'{", ".join(sorted(declared)) or "none"}')
  for name, value in overrides.items():
    kind = declared[name].get('type', 'STRING')
    try:
      values[name] = ({'intValue': str(int(value))} if kind == 'INT' else
                      {'doubleValue': float(value)} if kind == 'DOUBLE' else
                      {'stringValue': value})
    except ValueError:
      raise DryRunError(f'--param {name}={value}: not a {kind}') from None
  missing = sorted(set(declared) - set(values))
  if missing:
    raise DryRunError(f'runtime parameter(s) {", ".join(missing)} have no '
                      'value in the spec; give --param NAME=VALUE')
  return values


def _executor_class(container: Mapping[str, Any]) -> Optional[str]:
  args = container.get('args', [])
  for i, arg in enumerate(args[:-1]):
    if arg == '--executor_class_path':
      return args[i + 1]
  return None


def _custom_config(task: Mapping[str, Any]) -> Dict[str, Any]:
  value = task.get('inputs', {}).get('parameters', {}).get(
      'custom_config', {}).get('runtimeValue', {}).get('constantValue', {})
  try:
    return json.loads(value.get('stringValue') or 'null') or {}
  except ValueError:
    return {}


def _is_loopback(url: str) -> bool:
  parts = urllib.parse.urlsplit(url)
  return parts.scheme in ('http', 'https') and parts.hostname in (
      '127.0.0.1', 'localhost', '::1')


def check_runs_here(spec: Mapping[str, Any]) -> None:
  """Refuses tasks that would call other Google services from this machine.

  Tasks that call Vertex AI run when they talk to a loopback stand-in: this
  project's executors honour `--api-endpoint`, so a spec compiled with
  `--api-endpoint http://127.0.0.1:PORT` trains through its CustomJob path
  against whatever Vertex stand-in answers there.
  """
  pipeline_spec = spec['pipelineSpec']
  executors = pipeline_spec['deploymentSpec']['executors']
  for name, task in pipeline_spec['root']['dag']['tasks'].items():
    label = pipeline_spec['components'][task['componentRef']['name']].get(
        'executorLabel')
    container = executors.get(label, {}).get('container')
    if not container:
      continue
    if '--runner=DataflowRunner' in container.get('args', []):
      raise DryRunError(
          f'{name} runs Beam on Dataflow, which cannot run here; compile the '
          'spec for a dry run with --no-dataflow')
    executor_class = _executor_class(container) or ''
    if executor_class.startswith(_GOOGLE_EXTENSIONS):
      raise DryRunError(
          f'{name} runs {executor_class}, which calls Vertex AI; compile the '
          'spec for a dry run with --no-vertex-training and without '
          '--endpoint')
    if executor_class in _NOT_HERE:
      raise DryRunError(f'{name} runs {executor_class}, which '
                        f'{_NOT_HERE[executor_class]}')
    if executor_class in _VERTEX_EXECUTORS:
      # The endpoint the executor sends its CustomJob to (run_fn's tracking
      # is compiled from the same --api-endpoint).
      endpoint = _custom_config(task).get(
          vertex_config.TRAINING_API_ENDPOINT_KEY)
      if not endpoint or not _is_loopback(endpoint):
        raise DryRunError(
            f'{name} runs {executor_class}, which calls Vertex AI at '
            f'{endpoint or "its public endpoint"}; compile the spec for a '
            'dry run with --no-vertex-training, or with --api-endpoint '
            'http://127.0.0.1:PORT where a Vertex stand-in answers')


# --- local stand-ins for GCS and the image ------------------------------------

class _Paths:
  """gs://BUCKET/x -> ROOT/gcs/BUCKET/x; the image's /opt/fmnist -> the repo."""

  def __init__(self, root: str):
    self.gcs = os.path.join(root, 'gcs')

  def __call__(self, value: Any) -> Any:
    if isinstance(value, str):
      value = value.replace('gs://', self.gcs + '/')
      return value.replace(vertex_config.IMAGE_REPO_DIR + '/',
                           configs.REPO_ROOT + '/')
    if isinstance(value, list):
      return [self(v) for v in value]
    if isinstance(value, dict):
      return {k: self(v) for k, v in value.items()}
    return value


def _struct_value(value: Mapping[str, Any]) -> Any:
  """A pipeline spec Value ({stringValue|intValue|doubleValue}) as JSON."""
  if 'stringValue' in value:
    return value['stringValue']
  if 'intValue' in value:
    return int(value['intValue'])
  if 'doubleValue' in value:
    return float(value['doubleValue'])
  raise DryRunError(f'unsupported parameter value {value!r}')


def _runtime_artifact(artifact: dry_run_store.Artifact,
                      artifact_type: Mapping[str, Any]) -> Dict[str, Any]:
  return {'name': artifact.name, 'type': dict(artifact_type),
          'uri': artifact.uri, 'metadata': artifact.metadata}


def _number(value: Any) -> str:
  if isinstance(value, float) and value.is_integer():
    return str(int(value))
  return str(value)


# --- the runner -------------------------------------------------------------

class _Run:
  """One dry run: the spec, the record, what each task produced."""

  def __init__(self, cfg: DryRunConfig, spec: Dict[str, Any],
               progress: Callable[[TaskResult], None]):
    self.cfg, self.spec, self.progress = cfg, spec, progress
    self.root = os.path.abspath(cfg.root)
    self.paths = _Paths(self.root)
    pipeline_spec = spec['pipelineSpec']
    self.tasks = pipeline_spec['root']['dag']['tasks']
    self.components = pipeline_spec['components']
    self.executors = pipeline_spec['deploymentSpec']['executors']
    self.params = _parameter_values(spec, dict(cfg.params))
    self.run_id = (f'{pipeline_spec["pipelineInfo"]["name"]}-'
                   f'{time.strftime("%Y%m%d-%H%M%S")}-{uuid.uuid4().hex[:6]}')
    pipeline_root = spec.get('runtimeConfig', {}).get('gcsOutputDirectory')
    if not pipeline_root:
      raise DryRunError('the spec has no runtimeConfig.gcsOutputDirectory '
                        '(pipeline root)')
    self.run_root = os.path.join(self.paths(pipeline_root), self.run_id)
    os.makedirs(self.run_root, exist_ok=True)
    self.store = dry_run_store.Store(self.root)
    self.lock = threading.Lock()
    self.outputs: Dict[str, Dict[str, List[dry_run_store.Artifact]]] = {}

  def component(self, task: str) -> Dict[str, Any]:
    return self.components[self.tasks[task]['componentRef']['name']]

  def executor(self, task: str) -> Dict[str, Any]:
    return self.executors[self.component(task)['executorLabel']]

  def input_artifacts(self, task: str) -> Dict[str, List[dry_run_store.Artifact]]:
    result = {}
    for key, spec in self.tasks[task].get('inputs', {}).get(
        'artifacts', {}).items():
      source = spec.get('taskOutputArtifact')
      if source is None:
        raise DryRunError(f'task {task}: input {key} is not another task\'s '
                          f'output ({spec}); the dry run cannot resolve it')
      result[key] = self.outputs[source['producerTask']].get(
          source['outputArtifactKey'], [])
    return result

  def input_parameters(self, task: str) -> Dict[str, Dict[str, Any]]:
    result = {}
    for key, spec in self.tasks[task].get('inputs', {}).get(
        'parameters', {}).items():
      if 'componentInputParameter' in spec:
        value = self.params[spec['componentInputParameter']]
      elif 'runtimeValue' in spec:
        value = spec['runtimeValue']['constantValue']
      else:
        raise DryRunError(f'task {task}: parameter {key} has an unsupported '
                          f'source {spec}')
      result[key] = self.paths(value)
    return result

  # -- containers --

  def executor_input(self, task: str, task_dir: str) -> Dict[str, Any]:
    component = self.component(task)
    input_types = component.get('inputDefinitions', {}).get('artifacts', {})
    inputs = {
        key: {'artifacts': [_runtime_artifact(a, input_types[key]['artifactType'])
                            for a in arts]}
        for key, arts in self.input_artifacts(task).items() if arts}
    parameters = self.input_parameters(task)
    outputs = {}
    for key, definition in component.get('outputDefinitions', {}).get(
        'artifacts', {}).items():
      outputs[key] = {'artifacts': [{
          'name': self.artifact_name(task, key),
          'type': definition['artifactType'],
          'uri': os.path.join(task_dir, key), 'metadata': {}}]}
    return {
        'inputs': {
            'artifacts': inputs,
            'parameters': parameters,
            'parameterValues': {k: _struct_value(v)
                                for k, v in parameters.items()},
        },
        'outputs': {'artifacts': outputs,
                    'outputFile': os.path.join(task_dir,
                                               'executor_output.json')},
    }

  def artifact_name(self, task: str, key: str) -> str:
    # Vertex ML Metadata's resource names, in a store of our own.
    return f'dry-run/metadataStores/default/artifacts/{self.run_id}-{task}-{key}'

  def command(self, task: str, container: Mapping[str, Any],
              executor_input: Mapping[str, Any]) -> List[str]:
    serialized = json.dumps(executor_input)
    words = []
    for word in list(container.get('command', [])) + list(
        container.get('args', [])):
      match = _PLACEHOLDER_RE.search(word)
      if match and match.group('path'):
        raise DryRunError(f'task {task}: placeholder {match.group(0)} is not '
                          'one the dry run substitutes (only {{$}})')
      words.append(self.paths(word.replace('{{$}}', serialized)))
    if words and words[0] in ('python', 'python3'):
      words[0] = self.cfg.python
    return words

  def execute(self, task: str, what: str, words: List[str],
              log_path: str) -> None:
    with open(log_path, 'ab') as log:
      log.write(f'$ {what}\n'.encode())
      log.flush()
      proc = subprocess.run(words, stdout=log, stderr=subprocess.STDOUT,
                            cwd=configs.REPO_ROOT, check=False)
    if proc.returncode != 0:
      with open(log_path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
      tail = '\n'.join('  ' + l for l in lines[-_STDERR_TAIL_LINES:])
      raise TaskFailed(task, proc.returncode, log_path, tail)

  def cache_key(self, task: str, executor_input: Mapping[str, Any]) -> str:
    """What Vertex's cache key covers: component, inputs, parameters, image."""
    inputs = executor_input['inputs']
    payload = {
        'component': self.component(task),
        'container': self.executor(task).get('container'),
        'artifacts': {k: [a['name'] for a in v['artifacts']]
                      for k, v in inputs['artifacts'].items()},
        'parameters': inputs['parameters'],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()
                          ).hexdigest()

  def run_container(self, task: str
                    ) -> Tuple[str, Dict, Optional[str], List[str]]:
    container = self.executor(task)['container']
    task_dir = os.path.join(self.run_root, task)
    os.makedirs(task_dir, exist_ok=True)
    log_path = os.path.join(task_dir, 'log.txt')
    executor_input = self.executor_input(task, task_dir)
    driver = container.get('lifecycle', {}).get('preCacheCheck')
    if driver:
      # FileBasedExampleGen: span, version and fingerprint of the input.
      self.execute(task, 'preCacheCheck driver',
                   self.command(task, driver, executor_input), log_path)
      self.apply_driver_output(executor_input)
    caching = self.tasks[task].get('cachingOptions', {}).get('enableCache')
    key = self.cache_key(task, executor_input)
    if caching and self.cfg.enable_cache:
      with self.lock:
        cached = self.store.cached_outputs(key)
      if cached is not None:
        return 'cached', cached, None, []
    words = self.command(task, container, executor_input)
    self.execute(task, 'executor', words, log_path)
    return 'ran', self.read_executor_output(task, executor_input), key, words

  def apply_driver_output(self, executor_input: Dict[str, Any]) -> None:
    """What Vertex does with a driver's ExecutorOutput before the executor.

    Its parameters replace the task's (span, version, fingerprint, the
    span-resolved input_config) and its artifacts' metadata is the outputs'.
    """
    with open(executor_input['outputs']['outputFile'], encoding='utf-8') as f:
      output = json.load(f)
    inputs = executor_input['inputs']
    for key, value in output.get('parameterValues', {}).items():
      inputs['parameterValues'][key] = value
      if isinstance(value, (int, float)) and float(value).is_integer():
        inputs['parameters'][key] = {'intValue': str(int(value))}
      elif isinstance(value, (int, float)):
        inputs['parameters'][key] = {'doubleValue': value}
      else:
        inputs['parameters'][key] = {'stringValue': str(value)}
    for key, produced in output.get('artifacts', {}).items():
      target = executor_input['outputs']['artifacts'].get(key)
      for mine, theirs in zip(target['artifacts'] if target else [],
                              produced.get('artifacts', [])):
        mine['metadata'].update(theirs.get('metadata', {}))
    os.remove(executor_input['outputs']['outputFile'])

  def read_executor_output(self, task: str, executor_input: Mapping[str, Any]
                           ) -> Dict[str, List[dry_run_store.Artifact]]:
    path = executor_input['outputs']['outputFile']
    try:
      with open(path, encoding='utf-8') as f:
        produced = json.load(f).get('artifacts', {})
    except (OSError, ValueError) as e:
      raise DryRunError(f'task {task} exited 0 but wrote no executor output '
                        f'at {path}: {e}') from None
    outputs = {}
    for key, declared in executor_input['outputs']['artifacts'].items():
      arts = []
      written = produced.get(key, {}).get('artifacts', [])
      for mine, theirs in zip(declared['artifacts'], written or
                              declared['artifacts']):
        arts.append(dry_run_store.Artifact(
            name=mine['name'], schema_title=_schema_title(mine['type']),
            uri=theirs.get('uri') or mine['uri'],
            metadata={**mine['metadata'], **theirs.get('metadata', {})},
            run_id=self.run_id, task=task))
      outputs[key] = arts
    return outputs

  # -- resolvers and importers --

  def run_resolver(self, task: str) -> Dict[str, List[dry_run_store.Artifact]]:
    """Vertex's resolver: the newest LIVE artifact matching each query."""
    inputs = self.input_artifacts(task)
    outputs = {}
    for key, query in self.executor(task)['resolver'][
        'outputArtifactQueries'].items():
      text, empty = query['filter'], False

      def metadata_value(m, inputs=inputs):
        nonlocal empty
        arts = inputs.get(m.group('input'), [])
        value = arts[0].metadata.get(m.group('key')) if arts else None
        if value is None:
          empty = True
          return ''
        return _number(value)

      text = _INPUT_METADATA_RE.sub(metadata_value, text)
      if _PLACEHOLDER_RE.search(text):
        raise DryRunError(f'task {task}: resolver filter {text!r} has a '
                          'placeholder the dry run cannot evaluate')
      found = None if empty else self.store.latest(text, self.run_id)
      outputs[key] = [found] if found else []
    return outputs

  def run_importer(self, task: str) -> Dict[str, List[dry_run_store.Artifact]]:
    importer = self.executor(task)['importer']
    uri_spec = importer['artifactUri']
    if 'runtimeParameter' in uri_spec:
      uri = _struct_value(self.input_parameters(task)[
          uri_spec['runtimeParameter']])
    else:
      uri = self.paths(_struct_value(uri_spec['constantValue']))
    (key,) = self.component(task)['outputDefinitions']['artifacts']
    title = _schema_title(importer['typeSchema'])
    if not importer.get('reimport'):
      for old in reversed(self.store.artifacts):
        if old.uri == uri and old.schema_title == title:
          return {key: [old]}
    metadata = {k: _struct_value(v) if isinstance(v, dict) else v
                for k, v in importer.get('metadata', {}).items()}
    return {key: [dry_run_store.Artifact(
        name=self.artifact_name(task, key), schema_title=title, uri=uri,
        metadata=metadata, run_id=self.run_id, task=task)]}

  def run_task(self, task: str) -> Tuple[TaskResult, Optional[str]]:
    """One task (in a worker thread for containers); nothing shared changes."""
    start = time.monotonic()
    executor = self.executor(task)
    key, words = None, []
    if 'container' in executor:
      kind = 'container'
      state, outputs, key, words = self.run_container(task)
    elif 'resolver' in executor:
      kind, state, outputs = 'resolver', 'resolved', self.run_resolver(task)
    elif 'importer' in executor:
      kind, state, outputs = 'importer', 'resolved', self.run_importer(task)
    else:
      raise DryRunError(f'task {task}: executor {sorted(executor)} is not a '
                        'container, resolver or importer')
    # The ExecutorInput JSON is long and in the task's log: {{$}} here.
    command = tuple(w if not w.startswith('{') else '{{$}}' for w in words)
    result = TaskResult(task, kind, state, time.monotonic() - start, outputs,
                        command)
    return result, key

  def record(self, result: TaskResult, key: Optional[str]) -> None:
    """Keeps what a finished task made (a failed later task keeps it too)."""
    self.outputs[result.name] = result.outputs
    with self.lock:
      if result.state == 'ran' and key:
        self.store.remember(key, result.outputs)
      if result.kind != 'resolver':
        self.store.add([a for arts in result.outputs.values() for a in arts
                        if self.store.get(a.name) is None])
      self.store.save()
    self.progress(result)

  def run(self) -> DryRunResult:
    """Every task once its upstream tasks are done; independent ones at once,
    as on Vertex (up to `parallelism` containers). The first failure stops
    new tasks from starting; running ones finish, then it is raised."""
    upstream = _upstream(self.tasks)
    pending, done, results = set(self.tasks), set(), []
    running: Dict[concurrent.futures.Future, str] = {}
    failure = None
    with concurrent.futures.ThreadPoolExecutor(self.cfg.parallelism) as pool:
      while (pending and failure is None) or running:
        ready = sorted(t for t in pending if upstream[t] <= done)
        progressed = False
        if failure is None:
          for task in ready:
            pending.discard(task)
            if 'container' in self.executor(task):
              running[pool.submit(self.run_task, task)] = task
            else:  # metadata queries: instant, and in this thread
              result, key = self.run_task(task)
              self.record(result, key)
              results.append(result)
              done.add(task)
              progressed = True
        if progressed:
          continue  # what the metadata queries made ready
        if not running:
          if pending and failure is None and not ready:
            raise DryRunError('the spec\'s tasks form a cycle or depend on '
                              f'unknown tasks: {sorted(pending)}')
          continue
        finished, _ = concurrent.futures.wait(
            running, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in finished:
          task = running.pop(future)
          try:
            result, key = future.result()
          except DryRunError as e:
            failure = failure or e
            continue
          self.record(result, key)
          results.append(result)
          done.add(task)
    if failure is not None:
      raise failure
    return DryRunResult(self.run_id, tuple(results), self._pushed_to(results))

  @staticmethod
  def _pushed_to(results: List[TaskResult]) -> Optional[str]:
    for result in results:
      for artifact in result.outputs.get('pushed_model', []):
        if artifact.metadata.get('pushed'):
          return artifact.metadata.get('pushed_destination')
    return None


def run(cfg: DryRunConfig,
        progress: Callable[[TaskResult], None] = lambda result: None
        ) -> DryRunResult:
  """Dry-runs the spec at `cfg.spec_path`; raises TaskFailed on a failure."""
  spec = load_spec(cfg.spec_path)
  check_runs_here(spec)
  return _Run(cfg, spec, progress).run()
