"""Runs the pipeline with TFX's LocalDagRunner (SQLite MLMD, Beam DirectRunner)."""

from tfx import v1 as tfx

from pipeline import configs
from pipeline import pipeline as pipeline_lib


def metadata_config(cfg: configs.PipelineConfig):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(
      cfg.metadata_path)


def run(cfg: configs.PipelineConfig) -> None:
  """Runs one pipeline run; raises if a component fails (e.g. DataGate)."""
  tfx.orchestration.LocalDagRunner().run(
      pipeline_lib.create_pipeline(cfg, metadata_config(cfg)))
