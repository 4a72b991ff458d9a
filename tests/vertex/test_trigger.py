"""New data on GCP: infra/deploy_trigger.sh, its job and workflow, the
accounts provision.sh gives them, and `watch` submitting the Vertex pipeline.

No GCP: a stand-in `gcloud` (and `bq`) on PATH records each call and what it
was given on stdin or as --source; envsubst is the real one.
"""

import json
import os
import re
import subprocess

from google.auth import credentials as ga_credentials
import pytest
import yaml

from vertex_testenv import BUCKET, IMAGE, PROJECT, REGION

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
DEPLOY = os.path.join(ROOT, 'infra', 'deploy_trigger.sh')
PROVISION = os.path.join(ROOT, 'infra', 'provision.sh')
FAKE_GCLOUD = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
call = {'args': args}
if args[:3] == ['run', 'jobs', 'replace']:
  call['stdin'] = sys.stdin.read()
if '--source' in args:
  with open(args[args.index('--source') + 1]) as f:
    call['source'] = f.read()
with open(os.environ['GCLOUD_CALLS'], 'a') as f:
  f.write(json.dumps(call) + '\\n')
if args[:3] == ['eventarc', 'triggers', 'describe']:
  sys.exit(0 if os.environ.get('TRIGGER_EXISTS') else 1)
if args[:2] == ['storage', 'service-agent']:
  print('service-123@gs-project-accounts.iam.gserviceaccount.com')
if args[:2] == ['projects', 'describe']:
  print('123')
"""
# provision.sh makes ~60 calls: a shell recorder (one tab-separated line each)
# keeps it fast.
FAKE_GCLOUD_SH = r"""#!/usr/bin/env bash
printf '%s\t' "$@" >> "$GCLOUD_CALLS"; printf '\n' >> "$GCLOUD_CALLS"
case "$1 $2" in
  'storage service-agent') echo service-123@gs-project-accounts.iam.gserviceaccount.com ;;
  'projects describe') echo 123 ;;
esac
"""
TRIGGER_SA = f'fmnist-trigger@{PROJECT}.iam.gserviceaccount.com'
EVENTS_SA = f'fmnist-events@{PROJECT}.iam.gserviceaccount.com'


def _run(tmp_path, script=DEPLOY, fake=FAKE_GCLOUD, **env):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  for name in ('gcloud', 'bq'):
    (bin_dir / name).write_text(fake)
    (bin_dir / name).chmod(0o755)
  calls = tmp_path / 'calls.jsonl'
  full_env = {'PATH': f'{bin_dir}:{os.environ["PATH"]}',
              'GCLOUD_CALLS': str(calls), 'PROJECT': PROJECT,
              'REGION': REGION, 'BUCKET': BUCKET, 'PIPELINE_IMAGE': IMAGE,
              **env}
  full_env = {k: v for k, v in full_env.items() if v is not None}
  proc = subprocess.run(['bash', script], env=full_env, capture_output=True,
                        text=True)
  lines = calls.read_text().splitlines() if calls.exists() else []
  made = [json.loads(l) if l.startswith('{') else
          {'args': l.rstrip('\t').split('\t')} for l in lines]
  return proc, made


def _call(calls, *prefix):
  (call,) = [c for c in calls if c['args'][:len(prefix)] == list(prefix)]
  return call


def test_deploys_job_workflow_and_a_finalized_trigger(tmp_path):
  proc, calls = _run(tmp_path)
  assert proc.returncode == 0, proc.stderr
  job = yaml.safe_load(_call(calls, 'run', 'jobs', 'replace')['stdin'])
  spec = job['spec']['template']['spec']['template']['spec']
  assert spec['serviceAccountName'] == TRIGGER_SA
  (container,) = spec['containers']
  assert container['image'] == IMAGE and container['command'] == ['fmnist']
  args = container['args']
  assert args[:2] == ['watch', f'gs://{BUCKET}/raw/fashion-mnist/']
  assert {'--once', '--runner=vertex', f'--state-dir=gs://{BUCKET}/watch'} <= (
      set(args))
  env = {e['name']: e['value'] for e in container['env']}
  assert env['FMNIST_BUCKET'] == BUCKET and env['FMNIST_IMAGE'] == IMAGE
  assert env['FMNIST_SERVICE_ACCOUNT'] == (
      f'fmnist-pipeline@{PROJECT}.iam.gserviceaccount.com')
  # The job's arguments are flags `fmnist watch` has (and the env its
  # Vertex settings): parsed by the real command line parser.
  from fmnist import cli
  parsed = cli.build_parser().parse_args(args)
  assert parsed.once and parsed.runner == 'vertex' and not parsed.no_run

  invoker = _call(calls, 'run', 'jobs', 'add-iam-policy-binding')['args']
  assert 'fmnist-trigger' in invoker and f'serviceAccount:{EVENTS_SA}' in (
      invoker) and 'roles/run.invoker' in invoker

  deploy = _call(calls, 'workflows', 'deploy')
  assert f'--service-account' in deploy['args'] and EVENTS_SA in deploy['args']
  workflow = yaml.safe_load(deploy['source'])
  steps = {k: v for step in workflow['main']['steps'] for k, v in step.items()}
  assert steps['read_event']['assign'] == [
      {'object_name': '${event.data.name}'}]  # the workflow's own expression
  assert steps['only_the_raw_prefix']['switch'][0]['condition'] == (
      '${text.match_regex(object_name, "^raw/fashion-mnist/")}')
  assert steps['run_job']['call'] == 'googleapis.run.v1.namespaces.jobs.run'
  assert steps['run_job']['args'] == {
      'name': f'namespaces/{PROJECT}/jobs/fmnist-trigger', 'location': REGION,
      'body': {}, 'connector_params': {'skip_polling': True}}

  create = _call(calls, 'eventarc', 'triggers', 'create')['args']
  assert 'fmnist-raw-finalized' in create
  assert '--destination-workflow' in create and 'fmnist-trigger' in create
  filters = [create[i + 1] for i, a in enumerate(create)
             if a == '--event-filters']
  assert filters == ['type=google.cloud.storage.object.v1.finalized',
                     f'bucket={BUCKET}']
  assert create[create.index('--location') + 1] == REGION
  assert create[create.index('--service-account') + 1] == EVENTS_SA
  # Same bucket: no extra binding on it.
  assert not [c for c in calls if c['args'][:2] == ['storage', 'buckets']]


def test_rerun_updates_the_trigger_and_a_raw_bucket_gets_read_access(
    tmp_path):
  proc, calls = _run(tmp_path, TRIGGER_EXISTS='1', RAW_BUCKET='uploads-x',
                     RAW_PREFIX='fmnist/incoming/')
  assert proc.returncode == 0, proc.stderr
  update = _call(calls, 'eventarc', 'triggers', 'update')['args']
  assert 'bucket=uploads-x' in update
  assert not [c for c in calls if c['args'][:3] == ['eventarc', 'triggers',
                                                    'create']]
  binding = _call(calls, 'storage', 'buckets', 'add-iam-policy-binding')
  assert binding['args'][3] == 'gs://uploads-x'
  assert 'roles/storage.objectViewer' in binding['args']
  job = _call(calls, 'run', 'jobs', 'replace')['stdin']
  assert 'gs://uploads-x/fmnist/incoming/' in job


@pytest.mark.parametrize('env, message', [
    ({'PROJECT': None}, 'set PROJECT'),
    ({'PIPELINE_IMAGE': 'us-docker.pkg.dev/p/r/fmnist-pipeline'}, 'has no tag'),
    ({'RAW_PREFIX': ''}, 'must be a folder like raw/fashion-mnist/'),
    ({'RAW_PREFIX': 'raw'}, 'must be a folder'),
    ({'RAW_PREFIX': '/raw/'}, 'must be a folder'),
    ({'RAW_PREFIX': 'raw (1)/'}, 'must be a folder'),
    ({'RAW_PREFIX': 'data/'}, 'is where the pipeline writes'),
    ({'RAW_BUCKET': 'gs://x'}, 'is not a bucket name'),
])
def test_bad_settings_are_one_error_line_and_call_nothing(tmp_path, env,
                                                          message):
  proc, calls = _run(tmp_path, **env)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.startswith('error: ') and message in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  assert calls == []


def test_provision_gives_the_trigger_accounts_only_justified_roles(tmp_path):
  proc, calls = _run(tmp_path, script=PROVISION, fake=FAKE_GCLOUD_SH)
  assert proc.returncode == 0, proc.stderr

  def roles(member):
    return sorted(c['args'][c['args'].index('--role') + 1] for c in calls
                  if f'serviceAccount:{member}' in c['args'] and
                  '--role' in c['args'])
  assert roles(TRIGGER_SA) == ['roles/aiplatform.user',
                               'roles/artifactregistry.reader',
                               'roles/iam.serviceAccountUser',
                               'roles/storage.objectAdmin']
  assert roles(EVENTS_SA) == ['roles/eventarc.eventReceiver',
                              'roles/workflows.invoker']
  assert roles('service-123@gs-project-accounts.iam.gserviceaccount.com') == [
      'roles/pubsub.publisher']
  enabled = [a for c in calls if c['args'][:2] == ['services', 'enable']
             for a in c['args']]
  assert {'eventarc.googleapis.com', 'workflows.googleapis.com'} <= set(
      enabled)
  # Each grant in the script follows a comment that says why.
  with open(PROVISION, encoding='utf-8') as f:
    lines = f.read().splitlines()
  for i, line in enumerate(lines):
    if re.match(r'(project|bucket|repo|sa|dataset)_role ', line) and (
        'trigger' in line or 'events' in line or 'gcs_agent' in line):
      assert lines[i - 1].startswith('#') or lines[i - 2].startswith('#'), line


def test_watch_submits_the_vertex_pipeline_on_the_new_span(
    tmp_path, fake_vertex, monkeypatch):
  """What the job does after the ingest: a PipelineJob on the new data."""
  import sys
  sys.path.insert(0, os.path.join(ROOT, 'tests'))
  from test_watch import _upload  # pylint: disable=g-import-not-at-top
  from pipeline import configs
  from pipeline import ingest
  from pipeline import vertex_config
  from pipeline import vertex_submit
  from pipeline import watch
  monkeypatch.setattr(vertex_submit, 'default_credentials',
                      ga_credentials.AnonymousCredentials)
  vertex = vertex_config.VertexConfig(
      project=PROJECT, region=REGION, bucket=BUCKET, image=IMAGE,
      api_endpoint=fake_vertex.endpoint, check_image=False)
  pipeline_cfg = vertex_config.for_vertex(
      configs.PipelineConfig.from_home(str(tmp_path / 'home')), vertex)
  _upload(tmp_path / 'raw')
  cfg = watch.WatchConfig(
      source_dir=str(tmp_path / 'raw'), state_dir=str(tmp_path / 'state'),
      # Locally here; the job writes to the Vertex data root (gs://).
      ingest=ingest.IngestConfig(source_dir='',
                                 output_dir=str(tmp_path / 'data')),
      pipeline=pipeline_cfg, settle_seconds=0)
  event = watch.check(cfg)
  assert event.status == watch.INGESTED
  assert event.run.startswith(f'submitted projects/{PROJECT}/locations/'
                              f'{REGION}/pipelineJobs/fmnist-tfx-')
  (create,) = [r for r in fake_vertex.requests if r['method'] == 'POST' and
               r['path'].endswith('/pipelineJobs')]
  assert create['body']['runtimeConfig']['parameters'] == {
      'data_root': {'stringValue': f'gs://{BUCKET}/data'}}
  # The repeated event submits nothing more.
  assert watch.check(cfg).status == watch.SEEN
  assert len([r for r in fake_vertex.requests
              if r['path'].endswith('/pipelineJobs')]) == 1
