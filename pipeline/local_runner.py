"""Runs the pipeline with TFX's LocalDagRunner (SQLite MLMD, Beam DirectRunner)."""

import os

from tfx import v1 as tfx

from pipeline import configs
from pipeline import ingest
from pipeline import pipeline as pipeline_lib
from pipeline import summary
from pipeline.errors import UserError


class NoSpanError(UserError):
  """There is nothing to run on: no span has been ingested."""


def metadata_config(cfg: configs.PipelineConfig):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(
      cfg.metadata_path)


def run(cfg: configs.PipelineConfig) -> None:
  """Runs one pipeline run; raises if a component fails (e.g. DataGate)."""
  tfx.orchestration.LocalDagRunner().run(
      pipeline_lib.create_pipeline(cfg, metadata_config(cfg)))


def run_local(cfg: configs.PipelineConfig) -> summary.RunSummary:
  """One local run on the newest ingested span; returns what it did.

  What `fmnist pipeline run` and the retraining trigger call. Raises
  `NoSpanError` when nothing was ingested, and the DataGate's
  `DataValidationError` when the span is blocked.
  """
  if not ingest.existing_spans(cfg.data_root):
    raise NoSpanError(f'no span under {cfg.data_root}: run `fmnist ingest '
                      f'--home {os.path.dirname(cfg.data_root)}` first')
  run(cfg)
  return summary.summarize(cfg)
