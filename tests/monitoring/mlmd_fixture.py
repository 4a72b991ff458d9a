"""Records the MLMD lineage of a local pipeline run, for monitoring tests.

A real SQLite MLMD store with the artifact types, properties and event keys
the local runner records (compare a real `work/metadata.sqlite`):
ImportExampleGen -> Examples(span) -> StatisticsGen -> ExampleStatistics ->
DataGate -> report(statistics_id); Examples -> Transform -> Examples ->
Trainer -> Model -> Pusher -> PushedModel(pushed, pushed_version); Examples +
Model -> MonitoringReference -> pipeline.MonitoringReference. Running the
pipeline itself takes minutes; tests/test_e2e.py does that.
"""

import os
from typing import Dict, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

_ARTIFACT_TYPES = {
    'Examples': {'span': mlmd.INT, 'version': mlmd.INT,
                 'split_names': mlmd.STRING},
    'ExampleStatistics': {'span': mlmd.INT, 'split_names': mlmd.STRING},
    'ExampleAnomalies': {'span': mlmd.INT, 'split_names': mlmd.STRING},
    'Model': {}, 'PushedModel': {}, 'pipeline.MonitoringReference': {},
}
_COMPONENTS = {
    'ImportExampleGen': 'tfx.components.example_gen.import_example_gen.'
                        'component.ImportExampleGen',
    'StatisticsGen': 'tfx.components.statistics_gen.component.StatisticsGen',
    'DataGate': 'pipeline.data_gate.DataGate',
    'Transform': 'tfx.components.transform.component.Transform',
    'Trainer': 'tfx.components.trainer.component.Trainer',
    'Pusher': 'tfx.components.pusher.component.Pusher',
    'MonitoringReference': 'pipeline.reference_component.MonitoringReference',
}


class PipelineStore:
  """Writes one pipeline run after another into `metadata_path`."""

  def __init__(self, metadata_path: str):
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = (
        mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    self.store = metadata_store.MetadataStore(config)
    self._types: Dict[str, int] = {}
    for name, props in _ARTIFACT_TYPES.items():
      t = mlmd.ArtifactType(name=name)
      for key, kind in props.items():
        t.properties[key] = kind
      self._types[name] = self.store.put_artifact_type(t)
    for name in _COMPONENTS.values():
      self._types[name] = self.store.put_execution_type(
          mlmd.ExecutionType(name=name))

  def _artifact(self, type_name: str, uri: str,
                span_property: Optional[int] = None,
                **custom) -> mlmd.Artifact:
    a = mlmd.Artifact(type_id=self._types[type_name], uri=uri,
                      state=mlmd.Artifact.LIVE)
    if span_property is not None:
      a.properties['span'].int_value = span_property
    for key, value in custom.items():
      if isinstance(value, int):
        a.custom_properties[key].int_value = value
      else:
        a.custom_properties[key].string_value = value
    return a

  def _execute(self, component: str, inputs: Dict[str, mlmd.Artifact],
               outputs: Dict[str, mlmd.Artifact]) -> Dict[str, mlmd.Artifact]:
    execution = mlmd.Execution(type_id=self._types[_COMPONENTS[component]],
                               last_known_state=mlmd.Execution.COMPLETE)
    pairs = []
    for kind, artifacts in ((mlmd.Event.INPUT, inputs),
                            (mlmd.Event.OUTPUT, outputs)):
      for key, artifact in artifacts.items():
        event = mlmd.Event(type=kind)
        event.path.steps.add().key = key
        event.path.steps.add().index = 0
        pairs.append((artifact, event))
    _, artifact_ids, _ = self.store.put_execution(execution, pairs, [])
    ids = iter(artifact_ids[len(inputs):])
    return {key: self.store.get_artifacts_by_id([next(ids)])[0]
            for key in outputs}

  def record_run(self, root: str, span: int, statistics_uri: str,
                 pushed_version: Optional[str],
                 reference_uri: Optional[str] = None
                 ) -> Dict[str, mlmd.Artifact]:
    """One accepted span trained on and (if a version is given) pushed, with
    the pipeline's monitoring reference at `reference_uri` if given."""
    def uri(name):
      return os.path.join(root, name, str(span))
    # ExampleGen records the span as a custom property (the real store's
    # Examples carry it there); DataGate sets the report's `span` property.
    examples = self._execute('ImportExampleGen', {}, {
        'examples': self._artifact('Examples', uri('examples'), span=span)})
    examples = examples['examples']
    stats = self._execute('StatisticsGen', {'examples': examples}, {
        'statistics': self._artifact('ExampleStatistics', statistics_uri)})
    stats = stats['statistics']
    self._execute('DataGate', {'examples': examples, 'statistics': stats}, {
        'report': self._artifact('ExampleAnomalies', uri('report'),
                                 span_property=span, statistics_id=stats.id)})
    transformed = self._execute('Transform', {'examples': examples}, {
        'transformed_examples': self._artifact('Examples',
                                               uri('transformed'))})
    model = self._execute('Trainer', {
        'examples': transformed['transformed_examples']}, {
            'model': self._artifact('Model', uri('model'))})['model']
    found = {'examples': examples, 'statistics': stats, 'model': model}
    if reference_uri is not None:
      found.update(self._execute(
          'MonitoringReference', {'examples': examples, 'model': model},
          {'reference': self._artifact('pipeline.MonitoringReference',
                                       reference_uri, span=span)}))
    if pushed_version is not None:
      found.update(self._execute('Pusher', {'model': model}, {
          'pushed_model': self._artifact(
              'PushedModel', uri('pushed'), pushed=1,
              pushed_version=pushed_version,
              pushed_destination=os.path.join(root, 'serving_model',
                                              pushed_version))}))
    return found
