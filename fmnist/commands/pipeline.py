"""`fmnist pipeline run|compile|dry-run`: the TFX pipeline, locally or on Vertex.

`run` runs it with the local runner (the default) or submits it to Vertex AI
Pipelines (`--runner vertex`, with `--wait` following the job: exit 0 on
success, 1 on failure or cancellation). `compile` writes the Vertex
PipelineJob JSON without touching any cloud. `dry-run` executes such a
compiled spec here, task by task, through TFX's Vertex container entrypoint.
"""

import sys
import time

from fmnist import options
from models import runtime


def register(sub) -> None:
  p = sub.add_parser('pipeline', help='run or compile the TFX pipeline')
  psub = p.add_subparsers(dest='pipeline_command', required=True,
                          metavar='ACTION')
  r = psub.add_parser('run', help='run the pipeline on the newest span')
  r.add_argument('--runner', choices=('local', 'vertex'), default='local')
  options.add_home(r)
  options.add_pipeline_knobs(r)
  options.add_vertex_args(r)
  r.set_defaults(func=run)
  c = psub.add_parser('compile', help='write the Vertex AI pipeline spec')
  c.add_argument('--runner', choices=('vertex',), default='vertex')
  options.add_home(c)
  options.add_pipeline_knobs(c)
  options.add_vertex_args(c)
  c.set_defaults(func=compile_spec)
  d = psub.add_parser(
      'dry-run', help='execute a compiled Vertex spec locally, task by task')
  d.add_argument('--spec', required=True,
                 help='the PipelineJob JSON `pipeline compile` wrote (with '
                      '--no-dataflow; with Vertex Training only if compiled '
                      'with a loopback --api-endpoint where a Vertex '
                      'stand-in answers)')
  d.add_argument('--root', required=True,
                 help='local directory standing in for GCS (gs://B/x is '
                      'ROOT/gcs/B/x) and holding the record of earlier dry '
                      'runs (resolver baselines, cache)')
  d.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                 help='runtime parameter value, e.g. data_root=/path/to/data '
                      '(local paths allowed); repeatable')
  d.add_argument('--no-cache', action='store_true',
                 help='run every task even if the spec enables caching')
  d.set_defaults(func=dry_run)


def run(args) -> int:
  cfg = options.run_pipeline_config(args)
  if cfg.vertex is not None:
    return submit(cfg)
  runtime.prefer_onednn(True)  # the Trainer runs in this process
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import summary  # pylint: disable=g-import-not-at-top
  print(summary.format_summary(local_runner.run_local(cfg)))
  print(f'machine: {runtime.machine()}')  # what the times above ran on
  return 0


def submit(cfg) -> int:
  """Submits a Vertex pipeline config; with --wait, follows the job."""
  from pipeline import vertex_submit  # pylint: disable=g-import-not-at-top
  submission = vertex_submit.submit(cfg)
  print(f'submitted {submission.resource_name}')
  print(submission.console_url)
  if not cfg.vertex.wait:
    return 0
  outcome = vertex_submit.wait(
      submission, cfg.vertex.poll_seconds,
      lambda state: print(f'{time.strftime("%H:%M:%S")} {state}', flush=True))
  if outcome.succeeded:
    return 0
  print(f'pipeline job {submission.resource_name} ended {outcome.state}'
        + (f': {outcome.error}' if outcome.error else ''), file=sys.stderr)
  return 1


def compile_spec(args) -> int:
  from pipeline import kubeflow_v2_runner  # pylint: disable=g-import-not-at-top
  cfg = options.vertex_pipeline_config(args)
  # --param here becomes the spec's value (a submission may still override).
  path = kubeflow_v2_runner.compile_pipeline(cfg, cfg.vertex.output,
                                             dict(cfg.vertex.params))
  print(f'wrote {path}')
  return 0


def dry_run_config(args):
  """The typed `DryRunConfig` of `pipeline dry-run`'s flags."""
  from pipeline import dry_run as dry_run_lib  # pylint: disable=g-import-not-at-top
  params = []
  for pair in args.param:
    name, sep, value = pair.partition('=')
    if not sep or not name:
      raise options.UsageError(f'--param {pair!r}: expected NAME=VALUE')
    params.append((name, value))
  return dry_run_lib.DryRunConfig(spec_path=args.spec, root=args.root,
                                  params=tuple(params),
                                  enable_cache=not args.no_cache)


def dry_run(args) -> int:
  from pipeline import dry_run as dry_run_lib  # pylint: disable=g-import-not-at-top
  cfg = dry_run_config(args)

  def progress(task):
    found = ''
    if task.kind != 'container':
      names = [a.uri for arts in task.outputs.values() for a in arts]
      found = '  -> ' + (', '.join(names) if names else 'nothing (no baseline)')
    print(f'{task.name:<45} {task.state:<8} {task.seconds:7.1f} s{found}',
          flush=True)

  result = dry_run_lib.run(cfg, progress)
  print(f'dry run {result.run_id}: {len(result.tasks)} tasks done')
  if result.pushed_to:
    print(f'pushed to {result.pushed_to}')
  else:
    print('no model pushed (not blessed)')
  return 0
