"""The BaseModel resolver on a real (in-memory) MLMD store.

The lineage is recorded the way the pipeline records it: ExampleGen writes a
span's Examples, Transform reads them as `examples`, the Trainer reads
Transform's output as `examples` and writes a `model`, the Blessing names the
model by `current_model_id`.
"""

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import pytest
from tfx.types import standard_artifacts

from pipeline import base_model

Event = metadata_store_pb2.Event


class _Store:
  """An in-memory store with the pipeline's lineage, and the TFX artifacts
  a resolver receives."""

  def __init__(self):
    config = metadata_store_pb2.ConnectionConfig()
    config.fake_database.SetInParent()
    self.store = metadata_store.MetadataStore(config)
    self._types = {}
    self.models, self.blessings = [], []

  def _artifact(self, cls, **custom):
    artifact = cls()
    artifact.uri = f'/tmp/{cls.TYPE_NAME}/{len(self._types)}'
    for key, value in custom.items():
      artifact.set_int_custom_property(key, value)
    if cls.TYPE_NAME not in self._types:
      self._types[cls.TYPE_NAME] = self.store.put_artifact_type(
          artifact.artifact_type)
    artifact.type_id = self._types[cls.TYPE_NAME]
    [artifact.id] = self.store.put_artifacts([artifact.mlmd_artifact])
    return artifact

  def _execution(self, name, inputs, outputs):
    type_id = self.store.put_execution_type(
        metadata_store_pb2.ExecutionType(name=name))
    [execution] = self.store.put_executions(
        [metadata_store_pb2.Execution(type_id=type_id)])
    events = []
    for kind, artifacts in ((Event.INPUT, inputs), (Event.OUTPUT, outputs)):
      for key, artifact in artifacts.items():
        event = Event(artifact_id=artifact.id, execution_id=execution,
                      type=kind)
        event.path.steps.add().key = key
        events.append(event)
    self.store.put_events(events)

  def train(self, span: int, blessed: bool):
    """One run of a span: examples -> Transform -> Trainer -> Blessing."""
    examples = self._artifact(standard_artifacts.Examples, span=span)
    self._execution('ImportExampleGen', {}, {'examples': examples})
    transformed = self._artifact(standard_artifacts.Examples)
    self._execution('Transform', {'examples': examples},
                    {'transformed_examples': transformed})
    model = self._artifact(standard_artifacts.Model)
    self._execution('Trainer', {'examples': transformed}, {'model': model})
    self.models.append(model)
    self.blessings.append(self._artifact(
        standard_artifacts.ModelBlessing, blessed=int(blessed),
        current_model_id=model.id))
    return examples, model

  def resolve(self, examples):
    out = base_model.BlessedModelOfEarlierSpanStrategy().resolve_artifacts(
        self.store, {'examples': [examples], 'model': self.models,
                     'model_blessing': self.blessings})
    return out['model']


@pytest.fixture
def runs():
  return _Store()


def test_the_first_span_and_its_reruns_resolve_nothing(runs):
  span1, _ = runs.train(1, blessed=True)
  # A rerun of span 1 sees span 1's own blessed model: not a base for it.
  assert runs.resolve(span1) == []


def test_a_new_span_resolves_the_newest_blessed_model_of_an_older_one(runs):
  _, first = runs.train(1, blessed=True)
  span2, second = runs.train(2, blessed=True)
  runs.train(2, blessed=False)  # a newer model of span 2, refused
  span3, _ = runs.train(3, blessed=False)
  assert [m.id for m in runs.resolve(span3)] == [second.id]
  # Span 2 (and any rerun of it) resolves span 1's, whatever came later.
  assert [m.id for m in runs.resolve(span2)] == [first.id]


def test_a_span_with_no_blessed_model_before_it_resolves_nothing(runs):
  runs.train(1, blessed=False)
  span2, _ = runs.train(2, blessed=False)
  assert runs.resolve(span2) == []
