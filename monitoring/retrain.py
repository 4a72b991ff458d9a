"""The retraining trigger: an unhealthy verdict starts a pipeline run.

It runs exactly what `fmnist pipeline run` runs, with the same flags: the
local runner on HOME, or a Vertex AI PipelineJob (`--runner vertex`). Served
data has no labels, so retraining means rerunning the pipeline on the newest
*ingested* span: it helps once newly labeled data has been ingested (locally a
run is only started if a span newer than the served model's exists; on Vertex
the job is submitted and caching makes a rerun on unchanged data cheap).
"""

import dataclasses
from typing import Optional

LOCAL = 'local'
VERTEX = 'vertex'


@dataclasses.dataclass(frozen=True)
class Retraining:
  runner: str
  status: str       # 'started', 'not started', 'failed'
  message: str

  @property
  def failed(self) -> bool:
    return self.status == 'failed'

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def prepare(args):
  """Validates the retraining config before any monitoring work.

  Returns what `start` needs (Vertex credentials, or None locally); raises
  the CLI's user errors (bad flags, missing credentials) so they stop the
  command with exit code 2 up front.
  """
  from fmnist import cli  # pylint: disable=g-import-not-at-top
  if args.runner == VERTEX:
    from pipeline import vertex_cli  # pylint: disable=g-import-not-at-top
    vertex_cli.config_from_args(args)
    return vertex_cli.default_credentials()
  cli.pipeline_config(args)
  return None


def _local(args, baseline_span: Optional[int]) -> Retraining:
  from fmnist import cli  # pylint: disable=g-import-not-at-top
  from pipeline import ingest  # pylint: disable=g-import-not-at-top
  # The config `fmnist pipeline run --home HOME ...` builds from these flags.
  cfg = cli.pipeline_config(args)
  spans = ingest.existing_spans(cfg.data_root)
  if spans and baseline_span is not None and spans[-1] <= baseline_span:
    return Retraining(
        LOCAL, 'not started',
        f'not started: the newest span ({spans[-1]}) is the one '
        'the served model was trained on, so a run would reuse its cached '
        'results; ingest newly labeled data (`fmnist ingest --home '
        f'{args.home}`) and rerun')
  status = cli.run_local(cfg)
  return Retraining(LOCAL, 'started' if status == 0 else 'failed',
                    f'local pipeline run on span {spans[-1] if spans else "?"}'
                    f' finished (exit {status})')


def _vertex(args, credentials) -> Retraining:
  from pipeline import vertex_cli  # pylint: disable=g-import-not-at-top
  status = vertex_cli.run(args, credentials=credentials)
  if status != 0:
    return Retraining(VERTEX, 'failed',
                      f'the Vertex AI pipeline job failed (exit {status})')
  return Retraining(VERTEX, 'started',
                    'Vertex AI pipeline job submitted'
                    + (' and succeeded' if args.wait else ''))


def start(args, baseline_span: Optional[int], credentials=None) -> Retraining:
  """Starts the run; a user-fixable failure is returned, not raised."""
  from fmnist import cli  # pylint: disable=g-import-not-at-top
  try:
    if args.runner == VERTEX:
      return _vertex(args, credentials)
    return _local(args, baseline_span)
  except cli.user_errors() as e:
    return Retraining(args.runner, 'failed', str(e))
