"""The compiled JSON is a Vertex PipelineJob that runs our image and config."""

import json

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
import pytest

from vertex_testenv import (BUCKET, IMAGE, PROJECT, REGION, RUNNER_SA,
                            TRAINING_SA, vertex_flags)

BEAM_COMPONENTS = ('ImportExampleGen', 'StatisticsGen', 'InferredSchema',
                   'ExampleValidator', 'Transform', 'Evaluator')
EXPECTED_TASKS = {
    'ImportExampleGen', 'StatisticsGen', 'CuratedSchema', 'InferredSchema',
    'ExampleValidator', 'PreviousAcceptedSpan', 'DataGate', 'Transform',
    'Trainer', 'LatestBlessedModel-model-blessing-resolver',
    'LatestBlessedModel-model-resolver', 'Evaluator', 'Blessing', 'Pusher',
    'MonitoringReference'}
# task -> upstream tasks it must wait for (data edges and the DataGate gate).
EXPECTED_EDGES = {
    'StatisticsGen': {'ImportExampleGen', 'CuratedSchema'},
    'ExampleValidator': {'StatisticsGen', 'CuratedSchema'},
    'DataGate': {'ImportExampleGen', 'StatisticsGen', 'CuratedSchema',
                 'ExampleValidator', 'PreviousAcceptedSpan'},
    'Transform': {'ImportExampleGen', 'CuratedSchema', 'DataGate'},
    'Trainer': {'Transform', 'CuratedSchema'},
    'Evaluator': {'ImportExampleGen', 'Trainer', 'CuratedSchema',
                  'LatestBlessedModel-model-resolver'},
    # The blessing on evidence (pipeline/blessing.py) decides the push.
    'Blessing': {'ImportExampleGen', 'Trainer', 'Evaluator',
                 'LatestBlessedModel-model-resolver'},
    'Pusher': {'Trainer', 'Blessing'},
    # What `fmnist monitor` compares served traffic with (pipeline/reference.py).
    'MonitoringReference': {'ImportExampleGen', 'Trainer'},
}


def _tasks(spec):
  return spec['pipelineSpec']['root']['dag']['tasks']


def _executor(spec, task):
  component = spec['pipelineSpec']['components'][
      _tasks(spec)[task]['componentRef']['name']]
  return spec['pipelineSpec']['deploymentSpec']['executors'][
      component['executorLabel']]


def _param(spec, task, name):
  value = _tasks(spec)[task]['inputs']['parameters'][name]
  return value['runtimeValue']['constantValue']['stringValue']


def _runtime_params(spec):
  """Declared root parameters and the values runtimeConfig gives them."""
  declared = spec['pipelineSpec']['root'].get('inputDefinitions', {}).get(
      'parameters', {})
  values = spec['runtimeConfig'].get('parameters', {})
  return declared, {k: v['stringValue'] for k, v in values.items()}


def test_is_a_valid_pipeline_job(spec):
  # Strict proto parsing: unknown or mistyped fields fail here, as on Vertex.
  job = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
  pipeline = json_format.ParseDict(spec['pipelineSpec'],
                                   pipeline_spec_pb2.PipelineSpec())
  assert pipeline.pipeline_info.name == 'fmnist-tfx'
  assert pipeline.schema_version == '2.0.0'
  assert pipeline.sdk_version == 'tfx-1.16.0'
  assert job.runtime_config.gcs_output_directory == (
      f'gs://{BUCKET}/pipeline_root/fmnist-tfx')
  # Every task points at a component, every component at an executor.
  for name, task in _tasks(spec).items():
    component = spec['pipelineSpec']['components'][task['componentRef']['name']]
    assert component['executorLabel'] in (
        spec['pipelineSpec']['deploymentSpec']['executors']), name


def test_all_components_and_edges(spec):
  tasks = _tasks(spec)
  assert set(tasks) == EXPECTED_TASKS
  for task, upstream in EXPECTED_EDGES.items():
    assert set(tasks[task].get('dependentTasks', [])) == upstream, task
  # The blessed-model resolver is TFX's two-step query.
  assert tasks['LatestBlessedModel-model-resolver']['inputs']['artifacts'][
      'input']['taskOutputArtifact']['producerTask'] == (
          'LatestBlessedModel-model-blessing-resolver')


def test_every_executor_runs_the_configured_image(spec):
  executors = spec['pipelineSpec']['deploymentSpec']['executors']
  containers = {k: v['container'] for k, v in executors.items()
                if 'container' in v}
  resolvers = {k for k, v in executors.items() if 'resolver' in v}
  assert len(containers) == 12 and len(resolvers) == 3
  assert len(containers) + len(resolvers) == len(executors)
  for label, container in containers.items():
    assert container['image'] == IMAGE, label
    assert container['command'][-1] == (
        'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor')


def test_resolvers_are_metadata_queries(spec):
  query = _executor(spec, 'PreviousAcceptedSpan')['resolver'][
      'outputArtifactQueries']
  assert query == {'statistics': {
      'filter': 'schema_title="tfx.ExampleStatistics" AND state=LIVE'}}
  assert 'DataGate' in _tasks(spec)
  assert _tasks(spec)['DataGate']['inputs']['artifacts'][
      'baseline_statistics']['taskOutputArtifact']['producerTask'] == (
          'PreviousAcceptedSpan')


def test_paths_are_on_gcs_and_in_the_image(spec):
  assert _param(spec, 'CuratedSchema', 'schema_file') == (
      '/opt/fmnist/schema/schema.pbtxt')
  assert _runtime_params(spec)[1]['data_root'] == f'gs://{BUCKET}/data'
  destination = json.loads(_param(spec, 'Pusher', 'push_destination'))
  assert destination['filesystem']['base_directory'] == (
      f'gs://{BUCKET}/serving_model')
  # User code by module path (baked into the image), never a module file.
  assert _param(spec, 'Transform', 'preprocessing_fn') == (
      'models.preprocessing.preprocessing_fn')
  assert 'module_file' not in _tasks(spec)['Transform']['inputs']['parameters']
  assert _param(spec, 'Trainer', 'run_fn') == 'models.trainer.run_fn'


def test_data_root_is_a_runtime_parameter(spec):
  declared, values = _runtime_params(spec)
  # Declared on the root with its type, defaulting to the configured value.
  assert declared == {'data_root': {'type': 'STRING'}}
  assert values == {'data_root': f'gs://{BUCKET}/data'}
  # ImportExampleGen (and its span-resolving driver) reads it at run time.
  assert _tasks(spec)['ImportExampleGen']['inputs']['parameters'][
      'input_base'] == {'componentInputParameter': 'data_root'}
  component = spec['pipelineSpec']['components'][
      _tasks(spec)['ImportExampleGen']['componentRef']['name']]
  assert component['inputDefinitions']['parameters']['input_base'] == {
      'type': 'STRING'}
  # Strict parsing accepts the runtime config (as Vertex will).
  job = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
  assert job.runtime_config.parameters['data_root'].string_value == (
      f'gs://{BUCKET}/data')


def test_compile_param_sets_the_specs_value(monkeypatch, tmp_path):
  """FMNIST_PARAMS (as Cloud Build would pass it) beats --data-root's value."""
  from fmnist import cli  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('FMNIST_PARAMS', 'data_root=gs://elsewhere/fresh/')
  out = tmp_path / 'spec.json'
  assert cli.main(['pipeline', 'compile', *vertex_flags(),
                   '--data-root', 'gs://elsewhere/configured',
                   '--output', str(out)]) == 0
  declared, values = _runtime_params(json.loads(out.read_text()))
  assert set(declared) == {'data_root'}
  assert values == {'data_root': 'gs://elsewhere/fresh'}


def test_dataflow_args_reach_every_beam_component(spec):
  expected = {'--runner=DataflowRunner', f'--project={PROJECT}',
              f'--region={REGION}', f'--temp_location=gs://{BUCKET}/tmp',
              '--machine_type=n1-standard-4', '--max_num_workers=4',
              f'--sdk_container_image={IMAGE}',
              f'--service_account_email={RUNNER_SA}'}
  for task in BEAM_COMPONENTS:
    args = set(_executor(spec, task)['container']['args'])
    assert expected <= args, task


def test_trainer_runs_on_vertex_training(spec):
  # TFX's Vertex Training executor, honouring --api-endpoint.
  assert _executor(spec, 'Trainer')['container']['args'][1] == (
      'pipeline.vertex_training.Executor')
  config = json.loads(_param(spec, 'Trainer', 'custom_config'))
  assert config['ai_platform_enable_vertex'] is True
  assert config['ai_platform_vertex_region'] == REGION
  job = config['ai_platform_training_args']
  assert job['project'] == PROJECT
  assert job['labels'] == {'team': 'ml'}
  assert job['job_spec']['service_account'] == TRAINING_SA
  (pool,) = job['job_spec']['worker_pool_specs']
  assert pool == {'machine_spec': {'machine_type': 'n1-standard-8'},
                  'replica_count': 1, 'container_spec': {'image_uri': IMAGE}}
  # The model config and the experiment tracking ride along for run_fn.
  assert config['model']['conv_filters'] == [16, 32, 128]
  assert config['tracking'] == {'project': PROJECT, 'location': REGION,
                                'experiment': 'fmnist-tfx'}


def test_gpu_and_endpoint(spec_gpu_endpoint):
  spec = spec_gpu_endpoint
  config = json.loads(_param(spec, 'Trainer', 'custom_config'))
  (pool,) = config['ai_platform_training_args']['job_spec'][
      'worker_pool_specs']
  assert pool['machine_spec'] == {'machine_type': 'n1-standard-8',
                                  'accelerator_type': 'NVIDIA_TESLA_T4',
                                  'accelerator_count': 1}
  tasks = _tasks(spec)
  assert set(tasks) == EXPECTED_TASKS | {'RegistryPusher'}
  assert set(tasks['RegistryPusher']['dependentTasks']) == {'Trainer',
                                                            'Blessing'}
  assert _executor(spec, 'RegistryPusher')['container']['args'][1] == (
      'pipeline.registry_pusher.RegistryPusherExecutor')
  push = json.loads(_param(spec, 'RegistryPusher', 'custom_config'))
  assert push['model_registry'] == {
      'project': PROJECT, 'region': REGION, 'model_id': 'fmnist-cnn',
      'serving_image': push['model_registry']['serving_image'],
      'aliases': ['blessed', 'serving'], 'labels': {},
      'endpoint': 'fmnist-endpoint', 'machine_type': 'n1-standard-2',
      'api_endpoint': None}
  assert push['model_registry']['serving_image'].startswith(
      'us-docker.pkg.dev/vertex-ai/prediction/')


def test_without_dataflow_and_vertex_training(spec_in_pipeline):
  spec = spec_in_pipeline
  args = _executor(spec, 'Transform')['container']['args']
  assert '--runner=DataflowRunner' not in args
  assert '--direct_num_workers=1' in args
  assert _executor(spec, 'Trainer')['container']['args'][1] == (
      'tfx.components.trainer.executor.GenericExecutor')
  config = json.loads(_param(spec, 'Trainer', 'custom_config'))
  assert set(config) == {'model'}


def test_local_pipeline_is_unchanged(tmp_path):
  from tfx import v1 as tfx
  from pipeline import base_model
  from pipeline import configs
  from pipeline import data_gate
  from pipeline import pipeline as pipeline_lib
  from tfx.dsl.components.common import resolver
  components = {c.id: c for c in pipeline_lib.create_components(
      configs.PipelineConfig.from_home(str(tmp_path)))}
  assert 'RegistryPusher' not in components
  # Runtime parameters are Vertex-only: locally the data root is a plain path.
  assert components['ImportExampleGen'].exec_properties['input_base'] == str(
      tmp_path / 'data')
  assert components['PreviousAcceptedSpan'].exec_properties[
      resolver.RESOLVER_STRATEGY_CLASS] is data_gate.PreviousAcceptedSpanStrategy
  trainer = components['Trainer']
  assert type(trainer) is tfx.components.Trainer  # pylint: disable=unidiomatic-typecheck
  assert set(json.loads(trainer.exec_properties['custom_config'])) == {'model'}
  # A retraining run's warm start: the blessed model of an earlier span.
  assert components['BaseModel'].exec_properties[
      resolver.RESOLVER_STRATEGY_CLASS] is (
          base_model.BlessedModelOfEarlierSpanStrategy)
  assert trainer.inputs['base_model'].producer_component_id == 'BaseModel'


def test_custom_resolver_strategy_is_rejected_by_kubeflow_v2(tmp_path):
  """Why the Vertex config swaps PreviousAcceptedSpanStrategy (docs/vertex.md)."""
  import dataclasses
  from tfx import v1 as tfx
  from pipeline import configs
  from pipeline import pipeline as pipeline_lib
  cfg = dataclasses.replace(configs.PipelineConfig.from_home(str(tmp_path)),
                            pipeline_root='gs://b/root')
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=IMAGE), output_dir=str(tmp_path))
  with pytest.raises(TypeError, match='only support LatestArtifactStrategy'):
    runner.run(pipeline_lib.create_pipeline(cfg), write_out=False)
