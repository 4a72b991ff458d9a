"""`fmnist pipeline dry-run`: the compiled Vertex spec, executed here.

Fast tests: the resolver queries over the local metadata record, and the
errors a user sees (missing spec, bad --param, a spec that would call Google
services, a task whose executor does not import). The e2e tests compile the
spec for Vertex and dry-run it on a slice of the real data, four times under
one root: a first run pushes; a second clean run finds the first run's
blessed model as the Evaluator's baseline; the Vertex Training variant of the
spec trains through a CustomJob the loopback Vertex fake runs; a drifted span
is stopped by DataGate against the newest earlier statistics.
"""

import json
import os

import pytest

from fmnist import cli
from pipeline import configs
from pipeline import dry_run
from pipeline import dry_run_store
from vertex_testenv import vertex_flags  # pylint: disable=g-bad-import-order
from vertex_testenv import IMAGE, TRAINING_SA  # pylint: disable=g-bad-import-order

SOURCE = '/usr/share/datasets/fashion-mnist'
# One epoch of the default with one conv per block (half the default's
# convs), on tests/test_e2e.py's slice: the dry run trains four times. As in
# tests/test_e2e.py, BatchNorm's moving statistics follow faster than Keras'
# 0.99 over these few steps; with 0.99 the model predicted with statistics
# near their initial values and missed the 0.3 blessing bar (0.25 on test).
PIPELINE_ARGS = ['--epochs', '1', '--model-param', 'convs_per_block=1',
                 '--model-param', 'batchnorm_momentum=0.8',
                 '--min-accuracy', '0.3', '--max-accuracy-drop', '1.0']
ENTRYPOINT = ('-m', 'tfx.orchestration.kubeflow.v2.container.'
              'kubeflow_v2_run_executor')
PREDICTION_IMAGE = 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest'
RESOLVERS = {'PreviousAcceptedSpan',
             'LatestBlessedModel-model-blessing-resolver',
             'LatestBlessedModel-model-resolver'}


def _artifact(name, title, run, **metadata):
  return dry_run_store.Artifact(name=name, schema_title=title, uri=f'/u/{name}',
                                metadata=metadata, run_id=run)


def test_resolver_queries_pick_the_newest_match_of_an_earlier_run(tmp_path):
  store = dry_run_store.Store(str(tmp_path))
  store.add([
      _artifact('m1', 'tfx.Model', 'r1'),
      _artifact('b1', 'tfx.ModelBlessing', 'r1', blessed=1.0,
                current_model_id='m1'),
      _artifact('m2', 'tfx.Model', 'r2'),
      _artifact('b2', 'tfx.ModelBlessing', 'r2', blessed=0.0,
                current_model_id='m2'),
      _artifact('b3', 'tfx.ModelBlessing', 'r3', blessed=1.0),
  ])
  store.save()
  store = dry_run_store.Store(str(tmp_path))  # from the JSON record
  # The two queries KubeflowV2 compiles LatestBlessedModelStrategy into.
  blessed = ('schema_title="tfx.ModelBlessing" AND state=LIVE AND '
             'metadata.blessed.number_value=1')
  assert store.latest(blessed, before_run='r4').name == 'b3'
  assert store.latest(blessed, before_run='r3').name == 'b1'  # not b2
  assert store.latest('schema_title="tfx.Model" AND state=LIVE AND name="m1"',
                      before_run='r3').uri == '/u/m1'
  assert store.latest('schema_title="tfx.Statistics" AND state=LIVE',
                      before_run='r3') is None
  with pytest.raises(dry_run_store.UnsupportedFilter, match='create_time'):
    store.latest('create_time>"2024-01-01"', before_run='r3')


def _dry_run(*args):
  return cli.main(['pipeline', 'dry-run', *args])


def test_user_errors_name_the_fix(tmp_path, capsys, spec, spec_in_pipeline):
  assert _dry_run('--spec', str(tmp_path / 'nope.json'), '--root',
                  str(tmp_path)) == 2
  assert 'error: --spec' in capsys.readouterr().err
  path = tmp_path / 'spec.json'
  path.write_text(json.dumps(spec_in_pipeline))
  assert _dry_run('--spec', str(path), '--root', str(tmp_path), '--param',
                  'data_rot=/x') == 2
  err = capsys.readouterr().err
  assert 'unknown runtime parameter(s) data_rot' in err and 'data_root' in err
  assert _dry_run('--spec', str(path), '--root', str(tmp_path), '--param',
                  'data_root') == 2
  assert 'expected NAME=VALUE' in capsys.readouterr().err
  # The default spec runs Beam on Dataflow and trains on Vertex Training.
  path.write_text(json.dumps(spec))
  assert _dry_run('--spec', str(path), '--root', str(tmp_path)) == 2
  assert '--no-dataflow' in capsys.readouterr().err
  assert not os.path.exists(tmp_path / dry_run_store.RECORD_NAME)


def test_tasks_calling_vertex_need_a_loopback_endpoint(tmp_path, capsys):
  """Vertex Training runs only against a stand-in at a loopback
  --api-endpoint, never the public API; the registry push not at all."""
  from conftest import _compile  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'trainer.json'
  path.write_text(json.dumps(_compile(str(tmp_path / 't'), '--no-dataflow')))
  assert _dry_run('--spec', str(path), '--root', str(tmp_path)) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: Trainer runs pipeline.vertex_training.')
  assert 'its public endpoint' in err and '--api-endpoint' in err
  # The registry push needs the model at a gs:// URI: never in a dry run.
  path = tmp_path / 'registry.json'
  path.write_text(json.dumps(_compile(
      str(tmp_path / 'r'), '--no-dataflow', '--api-endpoint',
      'http://127.0.0.1:9', '--prediction-image', PREDICTION_IMAGE)))
  assert _dry_run('--spec', str(path), '--root', str(tmp_path)) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: RegistryPusher runs pipeline.registry_pusher')
  assert 'without --prediction-image' in err
  # Compiled for a loopback stand-in: accepted (the check only).
  spec = _compile(str(tmp_path / 'ok'), '--no-dataflow', '--api-endpoint',
                  'http://127.0.0.1:9')
  dry_run.check_runs_here(spec)
  spec = _compile(str(tmp_path / 'psc'), '--no-dataflow', '--api-endpoint',
                  'us-central1-aiplatform-x.p.googleapis.com')
  with pytest.raises(dry_run.DryRunError, match='p.googleapis.com'):
    dry_run.check_runs_here(spec)


def test_a_task_that_cannot_import_its_executor_fails_named(
    tmp_path, capsys, spec_in_pipeline):
  """The compiled spec with CuratedSchema's executor class path broken (and,
  to be quick, only that task): one error line naming the task, then the
  end of the container's output with its ImportError."""
  broken = json.loads(json.dumps(spec_in_pipeline))
  pipeline_spec = broken['pipelineSpec']
  args = pipeline_spec['deploymentSpec']['executors'][
      'CuratedSchema_executor']['container']['args']
  args[args.index('--executor_class_path') + 1] = 'pipeline.no_such.Executor'
  tasks = pipeline_spec['root']['dag']['tasks']
  pipeline_spec['root']['dag']['tasks'] = {
      'CuratedSchema': tasks['CuratedSchema']}
  path = tmp_path / 'broken.json'
  path.write_text(json.dumps(broken))
  assert _dry_run('--spec', str(path), '--root', str(tmp_path / 'root')) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: task CuratedSchema failed (exit 1); the last '
                        'lines of its output (')
  assert "ModuleNotFoundError: No module named 'pipeline.no_such'" in err
  log = err.split('output (', 1)[1].split(')', 1)[0]
  assert log.endswith(os.path.join('CuratedSchema', 'log.txt'))
  with open(log) as f:
    assert f.read().startswith('$ executor\n')


# --- the real thing ---------------------------------------------------------


@pytest.fixture(scope='module')
def dry_home(tmp_path_factory):
  """A span of the real data, a spec compiled for it, one dry-run root."""
  home = tmp_path_factory.mktemp('dry_run')
  assert cli.main(['ingest', '--home', str(home), '--train-limit', '2000',
                   '--test-limit', '500',
                   '--eval-fraction', '0.1']) == 0
  spec = str(home / 'pipeline.json')
  assert cli.main(['pipeline', 'compile', *vertex_flags(), '--no-dataflow',
                   '--no-vertex-training', *PIPELINE_ARGS,
                   '--output', spec]) == 0
  return {'home': str(home), 'spec': spec, 'root': str(home / 'root')}


def _run(dry_home, data_root):
  return dry_run.run(dry_run.DryRunConfig(
      spec_path=dry_home['spec'], root=dry_home['root'],
      params=(('data_root', data_root),)))


@pytest.fixture(scope='module')
def first_run(dry_home):
  return _run(dry_home, os.path.join(dry_home['home'], 'data'))


@pytest.mark.e2e
def test_first_dry_run_trains_blesses_and_pushes(first_run, dry_home):
  import tensorflow as tf
  from serving.backends import local
  run = first_run
  with open(dry_home['spec']) as f:
    tasks = set(json.load(f)['pipelineSpec']['root']['dag']['tasks'])
  assert {t.name for t in run.tasks} == tasks
  containers = [t for t in run.tasks if t.kind == 'container']
  assert len(containers) == 12
  assert 'MonitoringReference' in {t.name for t in containers}
  for task in containers:
    # Through TFX's Vertex entrypoint, with this Python for the image's.
    assert task.state == 'ran' and task.command[1:3] == ENTRYPOINT, task.name
    assert '{{$}}' in task.command
  # A first run has no baseline, as on Vertex.
  for name in RESOLVERS:
    assert run.task(name).outputs == {
        next(iter(run.task(name).outputs)): []}, name
  # Artifact metadata flowed: the preCacheCheck driver's span (ExampleGen
  # records it as a custom property) reached DataGate; the splits too.
  (examples,) = run.task('ImportExampleGen').outputs['examples']
  assert examples.metadata['custom:span'] == 1
  assert json.loads(examples.metadata['split_names']) == [
      'train', 'eval', 'test']
  (report,) = run.task('DataGate').outputs['report']
  assert report.metadata['span'] == 1
  (blessing,) = run.task('Blessing').outputs['blessing']
  assert blessing.metadata['blessed'] == 1
  (model,) = run.task('Trainer').outputs['model']
  # The entrypoint named the blessed model by its metadata name (the query
  # LatestBlessedModel compiles into needs it).
  assert blessing.metadata['current_model_id'] == model.name
  # Pushed in TF Serving's layout, where the spec's gs:// serving dir stands.
  base, version = os.path.split(run.pushed_to)
  assert base == os.path.join(dry_home['root'], 'gcs', 'fmnist-test-bucket',
                              'serving_model')
  assert version.isdigit()
  loaded = local.load_version(base, int(version))  # the proxy's loader
  out = loaded.predict_fn(pixels=tf.zeros([2, 784], tf.float32))
  assert out['probabilities'].shape == (2, 10)


@pytest.mark.e2e
def test_second_clean_run_uses_the_first_blessed_model_as_baseline(
    first_run, dry_home, capsys):
  status = cli.main(['pipeline', 'dry-run', '--spec', dry_home['spec'],
                     '--root', dry_home['root'], '--param',
                     f'data_root={os.path.join(dry_home["home"], "data")}'])
  out = capsys.readouterr().out
  assert status == 0
  (model,) = first_run.task('Trainer').outputs['model']
  # Progress per task: name, state, seconds; resolvers show what they found.
  line = next(l for l in out.splitlines()
              if l.startswith('LatestBlessedModel-model-resolver'))
  assert model.uri in line
  assert 'ImportExampleGen' in out and ' s' in out
  # Cached like Vertex: same data, same parameters; re-evaluated against the
  # new baseline (the same model, so McNemar has nothing to find).
  with open(os.path.join(dry_home['root'], dry_run_store.RECORD_NAME)) as f:
    record = json.load(f)
  blessings = [a for a in record['artifacts'] if a['task'] == 'Blessing']
  assert len(blessings) == 2
  assert blessings[-1]['metadata']['baseline_model_id'] == model.name
  assert 'McNemar exact p=1' in blessings[-1]['metadata']['reason']
  assert 'pushed to ' + first_run.pushed_to in out  # not pushed again


@pytest.mark.e2e
def test_vertex_training_variant_trains_through_a_custom_job(
    first_run, dry_home, fake_vertex, loopback_adc):
  """The spec as compiled for Vertex Training (only the API endpoint is the
  fake's): the Trainer task creates a CustomJob, the fake runs its container
  command (TFX's run_executor with the core Trainer), and the model it wrote
  goes on through evaluation and is pushed, as on Vertex."""
  del loopback_adc
  spec = os.path.join(dry_home['home'], 'pipeline-vertex-training.json')
  assert cli.main(['pipeline', 'compile', *vertex_flags(), '--no-dataflow',
                   '--api-endpoint', fake_vertex.url, *PIPELINE_ARGS,
                   '--output', spec]) == 0
  fake_vertex.custom_job_cwd = configs.REPO_ROOT  # the image's workdir
  run = dry_run.run(dry_run.DryRunConfig(
      spec_path=spec, root=dry_home['root'],
      params=(('data_root', os.path.join(dry_home['home'], 'data')),)))
  trainer = run.task('Trainer')
  assert trainer.state == 'ran' and trainer.command[1:3] == ENTRYPOINT
  assert 'pipeline.vertex_training.Executor' in trainer.command
  # The CustomJob the task created, as Vertex Training would get it.
  (job,) = fake_vertex.bodies('POST', '/customJobs')
  (pool,) = job['jobSpec']['workerPoolSpecs']
  assert pool['containerSpec']['imageUri'] == IMAGE
  assert pool['machineSpec'] == {'machineType': 'n1-standard-8'}
  assert job['jobSpec']['serviceAccount'] == TRAINING_SA
  command = pool['containerSpec']['command']
  assert command[:3] == ['python', '-m', 'tfx.scripts.run_executor']
  assert command[command.index('--executor_class_path') + 1] == (
      'tfx.components.trainer.executor.GenericExecutor')
  (name,) = fake_vertex.custom_job_logs
  assert fake_vertex.resources[name]['state'] == 'JOB_STATE_SUCCEEDED'
  # The job trained and wrote the model where the Trainer task's output is.
  (model,) = trainer.outputs['model']
  serving = os.path.join(model.uri, 'Format-Serving')
  assert (f'Training complete. Model written to {serving}.' in
          fake_vertex.custom_job_logs[name])
  assert os.path.exists(os.path.join(serving, 'saved_model.pb'))
  # It went on as on Vertex: upstream reused, the new model evaluated.
  assert run.task('Transform').state == 'cached'  # same inputs as run 1
  assert run.task('Evaluator').state == 'ran'
  (blessing,) = run.task('Blessing').outputs['blessing']
  assert blessing.metadata['current_model_id'] == model.name
  # Trained with run 1's data and seed: the same predictions, blessed, and
  # pushed as a new version of the serving directory.
  assert blessing.metadata['blessed'] == 1
  assert run.pushed_to and run.pushed_to != first_run.pushed_to


@pytest.mark.e2e
def test_drifted_span_is_stopped_by_data_gate(first_run, dry_home, capsys):
  from pipeline import ingest
  del first_run
  images, labels = ingest.read_idx_pair(SOURCE, ingest.TRAIN_FILES,
                                        offset=2000, limit=1000)
  test_images, test_labels = ingest.read_idx_pair(SOURCE, ingest.TEST_FILES,
                                                  limit=200)
  data = os.path.join(dry_home['home'], 'drifted')
  for split, (x, y) in {'train': (255 - images[100:], labels[100:]),
                        'eval': (255 - images[:100], labels[:100]),
                        'test': (255 - test_images, test_labels)}.items():
    ingest.write_split(x, y, os.path.join(data, 'span-2', split), 1, split)
  capsys.readouterr()
  status = cli.main(['pipeline', 'dry-run', '--spec', dry_home['spec'],
                     '--root', dry_home['root'], '--param',
                     f'data_root={data}'])
  captured = capsys.readouterr()
  assert status == 2
  assert captured.err.startswith('error: task DataGate failed (exit 1)')
  # The gate's own message, from the container's output.
  assert 'span 2 was blocked before training' in captured.err
  assert "feature 'image'" in captured.err and 'Jensen-Shannon' in captured.err
  # Its baseline was the newest earlier statistics (span 1's), as on Vertex.
  line = next(l for l in captured.out.splitlines()
              if l.startswith('PreviousAcceptedSpan'))
  assert '/StatisticsGen/statistics' in line
  assert 'Transform' not in captured.out  # stopped before training
