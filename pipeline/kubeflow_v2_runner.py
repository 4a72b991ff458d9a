"""Compiles the pipeline for Vertex AI Pipelines with KubeflowV2DagRunner.

Thin, like the taxi template's runner: the config decides everything, the one
`create_pipeline` builds the pipeline, and this writes the PipelineJob JSON.
Compiling touches no cloud; `vertex_cli` submits the file.
"""

import os

from tfx import v1 as tfx

from pipeline import configs
from pipeline import pipeline as pipeline_lib


def compile_pipeline(cfg: configs.PipelineConfig, output_path: str) -> str:
  """Writes the Vertex pipeline spec for `cfg` to `output_path`; returns it."""
  if cfg.vertex is None:
    raise configs.ConfigError('compiling for Vertex needs a Vertex config')
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          # Every step runs the image the user code is baked into.
          default_image=cfg.vertex.image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  runner.run(pipeline_lib.create_pipeline(cfg))
  return output_path
