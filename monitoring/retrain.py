"""The retraining trigger: an unhealthy verdict starts a pipeline run.

It runs exactly what `fmnist pipeline run` runs, from the same typed config:
the local runner on HOME, or a Vertex AI PipelineJob when the pipeline config
is a Vertex one. Served data has no labels, so retraining means rerunning the
pipeline on the newest *ingested* span: it helps once newly labeled data has
been ingested (locally a run is only started if a span newer than the served
model's exists; on Vertex the job is submitted and caching makes a rerun on
unchanged data cheap).
"""

import dataclasses
import logging
import os
from typing import Optional

from pipeline import configs
from pipeline import ingest
from pipeline import local_runner
from pipeline import vertex_submit
from pipeline.errors import UserError

LOCAL = 'local'
VERTEX = 'vertex'


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
  """What a retraining run runs: a local or a Vertex pipeline config.

  A Vertex config (`pipeline.vertex` set, from `vertex_config.for_vertex`)
  submits a PipelineJob, and waits for it if `pipeline.vertex.wait`.
  """
  pipeline: configs.PipelineConfig

  @property
  def runner(self) -> str:
    return LOCAL if self.pipeline.vertex is None else VERTEX


@dataclasses.dataclass(frozen=True)
class Retraining:
  runner: str
  status: str       # 'started', 'not started', 'failed'
  message: str
  job: Optional[str] = None  # the Vertex PipelineJob's resource name

  @property
  def failed(self) -> bool:
    return self.status == 'failed'

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def credentials_for(cfg: RetrainConfig):
  """What `start` needs to submit (Vertex credentials), or None locally.

  Called before any monitoring work, so missing credentials stop a monitor
  run up front with a `UserError`.
  """
  if cfg.runner == VERTEX:
    return vertex_submit.default_credentials()
  return None


def _local(cfg: configs.PipelineConfig,
           baseline_span: Optional[int]) -> Retraining:
  spans = ingest.existing_spans(cfg.data_root)
  if spans and baseline_span is not None and spans[-1] <= baseline_span:
    return Retraining(
        LOCAL, 'not started',
        f'not started: the newest span ({spans[-1]}) is the one '
        'the served model was trained on, so a run would reuse its cached '
        'results; ingest newly labeled data (`fmnist ingest --home '
        f'{os.path.dirname(cfg.data_root)}`) and rerun')
  run = local_runner.run_local(cfg)
  return Retraining(LOCAL, 'started',
                    f'local pipeline run on span {run.span} finished '
                    f'(blessed: {run.blessed})')


def _vertex(cfg: configs.PipelineConfig, credentials) -> Retraining:
  submission = vertex_submit.submit(cfg, credentials)
  job = submission.resource_name
  if not cfg.vertex.wait:
    return Retraining(VERTEX, 'started', 'Vertex AI pipeline job submitted',
                      job)
  outcome = vertex_submit.wait(
      submission, cfg.vertex.poll_seconds,
      lambda state: logging.info('Retraining job %s: %s', job, state))
  if not outcome.succeeded:
    return Retraining(VERTEX, 'failed',
                      f'the Vertex AI pipeline job ended {outcome.state}'
                      + (f': {outcome.error}' if outcome.error else ''), job)
  return Retraining(VERTEX, 'started',
                    'Vertex AI pipeline job submitted and succeeded', job)


def start(cfg: RetrainConfig, baseline_span: Optional[int],
          credentials=None) -> Retraining:
  """Starts the run; a user-fixable failure is returned, not raised.

  `baseline_span` is the span the served model was trained on (None if
  unknown): locally, no run starts unless a newer span was ingested.
  """
  try:
    if cfg.runner == VERTEX:
      return _vertex(cfg.pipeline, credentials)
    return _local(cfg.pipeline, baseline_span)
  except UserError as e:
    return Retraining(cfg.runner, 'failed', str(e))
