"""Compiles the pipeline for Vertex AI Pipelines with KubeflowV2DagRunner.

Thin, like the taxi template's runner: the config decides everything, the one
`create_pipeline` builds the pipeline, and this writes the PipelineJob JSON.
Compiling touches no cloud; `vertex_submit` submits the result.
"""

import os
from typing import Any, Dict, Mapping, Optional

from tfx import v1 as tfx

from pipeline import configs
from pipeline import pipeline as pipeline_lib


def runtime_parameter_defaults(pipeline: tfx.dsl.Pipeline) -> Dict[str, Any]:
  """Each RuntimeParameter's default, by name.

  KubeflowV2DagRunner declares the parameters in `root.inputDefinitions` but
  not their defaults; Vertex needs a value for each, so they go into the
  spec's `runtimeConfig`, where a submission can override them.
  """
  defaults = {}
  for component in pipeline.components:
    for value in component.exec_properties.values():
      if isinstance(value, tfx.dsl.experimental.RuntimeParameter):
        defaults[value.name] = value.default
  return defaults


def compile_pipeline(cfg: configs.PipelineConfig, output_path: str,
                     parameter_values: Optional[Mapping[str, Any]] = None
                     ) -> str:
  """Writes the Vertex pipeline spec for `cfg` to `output_path`; returns it.

  `parameter_values` replace the runtime parameters' defaults (the configured
  values) in the spec's `runtimeConfig`.
  """
  if cfg.vertex is None:
    raise configs.ConfigError('compiling for Vertex needs a Vertex config')
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          # Every step runs the image the user code is baked into.
          default_image=cfg.vertex.image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  pipeline = pipeline_lib.create_pipeline(cfg)
  values = runtime_parameter_defaults(pipeline)
  unknown = sorted(set(parameter_values or {}) - set(values))
  if unknown:
    raise configs.ConfigError(
        f'unknown runtime parameter(s) {", ".join(unknown)}; the pipeline '
        f'has: {", ".join(sorted(values))}')
  values.update(parameter_values or {})
  runner.run(pipeline, parameter_values=values)
  return output_path
