"""`fmnist pipeline run|compile`: the TFX pipeline, locally or on Vertex AI.

`run` runs it with the local runner (the default) or submits it to Vertex AI
Pipelines (`--runner vertex`, with `--wait` following the job: exit 0 on
success, 1 on failure or cancellation). `compile` writes the Vertex
PipelineJob JSON without touching any cloud.
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


def run(args) -> int:
  cfg = options.run_pipeline_config(args)
  if cfg.vertex is not None:
    return submit(cfg)
  runtime.prefer_onednn(True)  # the Trainer runs in this process
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import summary  # pylint: disable=g-import-not-at-top
  print(summary.format_summary(local_runner.run_local(cfg)))
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
