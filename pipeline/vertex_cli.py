"""`fmnist pipeline {compile,run} --runner vertex`: Vertex AI Pipelines.

Placeholder until the Vertex issue lands: the flags exist, the actions say so.
"""

from pipeline import configs


def add_args(parser) -> None:
  """Adds the Vertex flags to a `pipeline run`/`pipeline compile` parser."""
  del parser


def compile_spec(args) -> int:
  del args
  raise configs.ConfigError('compiling for Vertex AI is not implemented yet')


def run(args) -> int:
  del args
  raise configs.ConfigError('submitting to Vertex AI is not implemented yet')
