"""Walks over ML Metadata lineage: which execution made an artifact, what it read.

Shared by the monitor (the served model's training data and statistics,
monitoring/baseline.py) and the pipeline (the span a blessed model was
trained on, pipeline/base_model.py).
"""

from typing import List, Optional

from ml_metadata.proto import metadata_store_pb2

from pipeline import reference

_OUTPUTS = (metadata_store_pb2.Event.OUTPUT,
            metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUTS = (metadata_store_pb2.Event.INPUT,
           metadata_store_pb2.Event.DECLARED_INPUT)


def property_of(artifact, name: str):
  """An MLMD artifact's (custom) property `name`: its string or int value,
  None if it has none."""
  for props in (artifact.custom_properties, artifact.properties):
    if name in props:
      value = props[name]
      return value.string_value or value.int_value
  return None


class Lineage:
  """Event walks over one store."""

  def __init__(self, store):
    self._store = store
    self._types = {t.id: t.name for t in store.get_artifact_types()}

  def type_name(self, artifact) -> str:
    return self._types.get(artifact.type_id, '')

  def producer(self, artifact_id: int) -> Optional[int]:
    events = self._store.get_events_by_artifact_ids([artifact_id])
    return next((e.execution_id for e in events if e.type in _OUTPUTS), None)

  def inputs(self, execution_id: int, key: str) -> List:
    events = self._store.get_events_by_execution_ids([execution_id])
    ids = [e.artifact_id for e in events if e.type in _INPUTS and
           e.path.steps and e.path.steps[0].key == key]
    return list(self._store.get_artifacts_by_id(ids)) if ids else []

  def upstream(self, artifact, key: str) -> List:
    execution = self.producer(artifact.id)
    return [] if execution is None else self.inputs(execution, key)

  def raw_examples(self, pushed):
    """The ExampleGen output the pushed model was trained from, or None."""
    models = self.upstream(pushed, 'model')
    return self.trained_on(models[0]) if models else None

  def trained_on(self, model):
    """The ExampleGen output a Trainer's model was trained from, or None."""
    examples = self.upstream(model, 'examples')
    # Transform's output, then the raw Examples it read (no 'examples' input).
    while examples:
      earlier = self.upstream(examples[0], 'examples')
      if not earlier:
        return examples[0]
      examples = earlier
    return None

  def made_from(self, artifact, type_name: str) -> Optional[object]:
    """The newest live `type_name` artifact an execution made from
    `artifact` (an output of one of its readers)."""
    events = self._store.get_events_by_artifact_ids([artifact.id])
    readers = {e.execution_id for e in events if e.type in _INPUTS}
    if not readers:
      return None
    out_events = self._store.get_events_by_execution_ids(sorted(readers))
    ids = [e.artifact_id for e in out_events if e.type in _OUTPUTS]
    found = [a for a in self._store.get_artifacts_by_id(ids)
             if self.type_name(a) == type_name and
             a.state == metadata_store_pb2.Artifact.LIVE]
    return max(found, key=lambda a: a.id) if found else None

  def statistics_of(self, examples) -> Optional[object]:
    """The newest statistics StatisticsGen computed from `examples`."""
    return self.made_from(examples, 'ExampleStatistics')

  def reference_of(self, pushed) -> Optional[str]:
    """The URI of the monitoring reference the pipeline made for the pushed
    model (pipeline/reference.py), or None (a model pushed before it existed)."""
    models = self.upstream(pushed, 'model')
    found = self.made_from(models[0], reference.TYPE_NAME) if models else None
    return found.uri if found is not None else None
