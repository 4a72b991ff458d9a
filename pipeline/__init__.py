"""The TFX pipeline for Fashion-MNIST: ingestion, one pipeline definition, runners."""


def __getattr__(name):
  """`pipeline.MonitoringReference`: the custom artifact class under the
  import path its Vertex schema title names (pipeline/reference.py), loaded
  only when asked for, so `import pipeline.x` does not load TFX."""
  if name == 'MonitoringReference':
    from pipeline import reference_component  # pylint: disable=g-import-not-at-top
    return reference_component.MonitoringReferenceArtifact
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
