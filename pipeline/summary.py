"""What a run did, read back from MLMD and the Evaluator's output.

The local runner executes components one after another, so a component's wall
time is the gap between its end and the previous one's (launcher overhead
included, which is what a user waits for).
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.orchestration import metadata

from models import budget
from models import features
from models import metrics
from models import temperature
from models import trainer
from models import warm_start
from pipeline import calibration
from pipeline import configs
from pipeline import evaluation
from pipeline.errors import UserError

_STATES = {
    metadata_store_pb2.Execution.COMPLETE: 'ran',
    metadata_store_pb2.Execution.CACHED: 'cached',
    metadata_store_pb2.Execution.FAILED: 'FAILED',
    metadata_store_pb2.Execution.RUNNING: 'running',
    metadata_store_pb2.Execution.CANCELED: 'canceled',
    metadata_store_pb2.Execution.NEW: 'new',
}
# Every finished run records the Pusher (it runs even when it pushes nothing);
# a run killed between two components has only COMPLETE executions but no Pusher.
FINAL_NODE = 'Pusher'
# Components that resolve rather than compute: cached-looking in every run.
_RESOLVERS = ('LatestBlessedModel', 'PreviousAcceptedSpan')
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT,
                  metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass(frozen=True)
class ComponentRun:
  node_id: str
  state: str        # ran, cached, FAILED, ...
  seconds: float


@dataclasses.dataclass(frozen=True)
class EvalMetrics:
  """Test-set metrics of one model: overall, macro-averaged and per class."""
  uri: str
  overall: Dict[str, float]            # accuracy, loss, example_count, macro_*
  per_class: Dict[int, Dict[str, float]]  # class id -> precision/recall/f1/count
  confusion: List[List[float]]         # [actual][predicted] example counts
  passed_thresholds: bool


@dataclasses.dataclass(frozen=True)
class RunSummary:
  run_id: str
  span: Optional[int]
  components: List[ComponentRun]
  metrics: Optional[EvalMetrics]
  blessed: Optional[bool]
  pushed_to: Optional[str]   # the version directory, if this run pushed
  # Trainer's per-epoch metrics (`history.json`), {} if nothing was trained.
  history: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
  # Why the Blessing step blessed or blocked the model (which test, numbers).
  blessing_reason: Optional[str] = None
  # The served temperature's fit on `eval` (`temperature.json`), if any.
  temperature: Optional[Dict[str, float]] = None
  # How the Trainer started (`warm_start.json`): from scratch or from the
  # last blessed model's weights, and why.
  warm_start: Optional[Dict[str, Any]] = None
  # The Trainer's time budget (`time_budget.json`), if it had one: how many
  # epochs fit and why.
  time_budget: Optional[Dict[str, Any]] = None

  @property
  def epochs(self) -> int:
    return len(self.history.get('loss', []))

  @property
  def total_seconds(self) -> float:
    return sum(c.seconds for c in self.components)

  def seconds_of(self, node_id: str) -> float:
    return sum(c.seconds for c in self.components if c.node_id == node_id)

  @property
  def outcome(self) -> str:
    """completed, cached, failed at X, or not finished (killed or still running).

    A killed run leaves its current component RUNNING in MLMD (or nothing
    after its last COMPLETE one), so it must not read as completed.
    """
    failed = [c.node_id for c in self.components if c.state == 'FAILED']
    if failed:
      return f'failed at {", ".join(failed)}'
    open_ = [c.node_id for c in self.components
             if c.state not in ('ran', 'cached')]
    if open_ or not any(c.node_id == FINAL_NODE for c in self.components):
      last = open_ or [c.node_id for c in self.components[-1:]]
      return ('not finished' + (f' (stopped in {", ".join(open_)})' if open_
                                else f' (nothing after {last[0]})' if last
                                else ''))
    if all(c.state == 'cached' for c in self.components
           if c.node_id not in _RESOLVERS):
      return 'cached'
    return 'completed'

  @property
  def finished(self) -> bool:
    return self.outcome in ('completed', 'cached')


class NoMetadataError(UserError):
  """The home has no pipeline metadata yet (no run has happened there)."""


def open_store(cfg: configs.PipelineConfig) -> metadata_store.MetadataStore:
  """The pipeline's MLMD store, for reading. A missing store is an error, not
  an empty one: SQLite would create it (and the home) and report "no runs"
  for a mistyped --home."""
  if not cfg.metadata_path or not os.path.exists(cfg.metadata_path):
    raise NoMetadataError(f'no pipeline metadata at {cfg.metadata_path}: run '
                          '`fmnist run` first (or pass --home)')
  return metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(cfg.metadata_path))


def _value(metric: Dict) -> float:
  return float(metric.get('doubleValue', float('nan')))


def class_metrics(confusion: List[List[float]]) -> Dict[int, Dict[str, float]]:
  """One-vs-rest precision/recall/F1 and count per class of a [actual][predicted]
  matrix (`models.metrics.class_scores`)."""
  precision, recall, f1 = metrics.class_scores(confusion)
  return {c: {'precision': float(precision[c]), 'recall': float(recall[c]),
              'f1_score': float(f1[c]), 'count': float(sum(confusion[c]))}
          for c in range(len(confusion))}


def load_eval_metrics(uri: str, model_name: Optional[str] = None) -> EvalMetrics:
  """Reads a TFMA output directory (one model of it) into plain numbers.

  Default: the candidate when TFMA also evaluated a baseline (its plots are
  keyed by model name, so an unnamed load would have no confusion matrix).
  """
  if model_name is None:
    from tensorflow_model_analysis.writers import eval_config_writer  # pylint: disable=g-import-not-at-top
    locations = eval_config_writer.load_eval_run(uri)[3]
    model_name = 'candidate' if 'candidate' in locations else None
  result = tfma.load_eval_result(uri, model_name=model_name)
  slices = dict(result.slicing_metrics)
  overall_m = slices[()]['']
  overall = {
      'accuracy': _value(overall_m[''][evaluation.ACCURACY]),
      'loss': _value(overall_m['']['sparse_categorical_crossentropy']),
      'example_count': _value(overall_m['']['example_count']),
      'ece': _value(overall_m[''].get(calibration.ECE_NAME, {})),
  }
  confusion = [[0.0] * features.NUM_CLASSES for _ in range(features.NUM_CLASSES)]
  for slice_key, plots in result.plots:
    if slice_key != ():
      continue
    matrices = plots['']['']['multiClassConfusionMatrixAtThresholds']['matrices']
    for entry in matrices[0].get('entries', []):
      confusion[entry.get('actualClassId', 0)][
          entry.get('predictedClassId', 0)] += entry.get('numWeightedExamples', 0)
  per_class = class_metrics(confusion)
  for k in ('precision', 'recall', 'f1_score'):
    overall[f'macro_{k}'] = (sum(m[k] for m in per_class.values()) /
                             len(per_class))
  try:
    passed = tfma.load_validation_result(uri).validation_ok
  except (IOError, ValueError, tf.errors.OpError):
    passed = True  # no thresholds in the EvalConfig: nothing was validated
  return EvalMetrics(
      uri=uri, overall=overall, per_class=per_class, confusion=confusion,
      passed_thresholds=passed)


def _node_id(store, execution_id: int) -> str:
  for ctx in store.get_contexts_by_execution(execution_id):
    if ctx.type == 'node':
      return ctx.name.split('.', 1)[-1]
  return '?'


def run_ids(store) -> List[str]:
  """Pipeline run ids, oldest first."""
  runs = store.get_contexts_by_type('pipeline_run')
  return [c.name for c in sorted(runs, key=lambda c: c.create_time_since_epoch)]


def _outputs(store, executions) -> Dict[str, List]:
  """Output artifacts of `executions` by artifact type name."""
  outputs = {}
  events = store.get_events_by_execution_ids([e.id for e in executions])
  artifact_ids = [ev.artifact_id for ev in events if ev.type in _OUTPUT_EVENTS]
  types = {t.id: t.name for t in store.get_artifact_types()}
  for artifact in store.get_artifacts_by_id(artifact_ids):
    outputs.setdefault(types[artifact.type_id], []).append(artifact)
  return outputs


def run_outputs(store, run_id: str) -> Dict[str, List]:
  """Output artifacts (MLMD protos) of one pipeline run, by type name."""
  run = store.get_context_by_type_and_name('pipeline_run', run_id)
  if run is None:
    raise configs.ConfigError(f'no pipeline run {run_id!r}')
  return _outputs(store, store.get_executions_by_context(run.id))


def summarize(cfg: configs.PipelineConfig, run_id: Optional[str] = None,
              store: Optional[metadata_store.MetadataStore] = None
              ) -> RunSummary:
  """Summary of `run_id` (default: the newest run), from `store` if given."""
  store = store or open_store(cfg)
  ids = run_ids(store)
  if not ids:
    raise configs.ConfigError(f'no pipeline run recorded in {cfg.metadata_path}')
  run_id = run_id or ids[-1]
  run = store.get_context_by_type_and_name('pipeline_run', run_id)
  executions = sorted(store.get_executions_by_context(run.id),
                      key=lambda e: (e.last_update_time_since_epoch, e.id))
  components = []
  previous_end = run.create_time_since_epoch
  for e in executions:
    end = e.last_update_time_since_epoch
    components.append(ComponentRun(
        node_id=_node_id(store, e.id),
        state=_STATES.get(e.last_known_state, str(e.last_known_state)),
        seconds=max(0.0, (end - previous_end) / 1000)))
    previous_end = max(previous_end, end)

  outputs = _outputs(store, executions)

  def first(type_name):
    return outputs.get(type_name, [None])[0]

  examples = first('Examples')
  evaluation_artifact = first('ModelEvaluation')
  # The Blessing step's output; the Evaluator's own (threshold-free) blessing
  # has no `blessed` property.
  blessing = next((b for b in outputs.get('ModelBlessing', [])
                   if 'blessed' in b.custom_properties), None)
  pushed = first('PushedModel')
  model_run = first('ModelRun')
  history = _read_json(model_run, trainer.HISTORY_FILE) or {}
  metrics = None
  if evaluation_artifact is not None and os.path.isdir(evaluation_artifact.uri):
    metrics = load_eval_metrics(evaluation_artifact.uri)
  pushed_to = None
  if pushed is not None and pushed.custom_properties['pushed'].int_value == 1:
    pushed_to = pushed.custom_properties['pushed_destination'].string_value
  return RunSummary(
      run_id=run_id,
      span=(examples.custom_properties['span'].int_value
            if examples is not None and 'span' in examples.custom_properties
            else None),
      components=components,
      metrics=metrics,
      blessed=(None if blessing is None else
               blessing.custom_properties['blessed'].int_value == 1),
      pushed_to=pushed_to,
      history=history,
      temperature=_read_json(model_run, trainer.TEMPERATURE_FILE),
      warm_start=_read_json(model_run, warm_start.RECORD_FILE),
      time_budget=_read_json(model_run, budget.RECORD_FILE),
      blessing_reason=(blessing.custom_properties['reason'].string_value
                       if blessing is not None and
                       'reason' in blessing.custom_properties else None))


def _read_json(model_run, name: str) -> Optional[Dict]:
  """A JSON file the Trainer wrote in its run dir, None if absent."""
  if model_run is None:
    return None
  path = os.path.join(model_run.uri, name)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def format_summary(s: RunSummary) -> str:
  """The table `fmnist run` prints at the end."""
  lines = [f'run {s.run_id}' + (f' (span {s.span})' if s.span else '')
           + f': {s.outcome}', '',
           f'  {"component":<22} {"state":<8} {"seconds":>8}']
  for c in s.components:
    lines.append(f'  {c.node_id:<22} {c.state:<8} {c.seconds:8.1f}')
  total = s.total_seconds
  train = s.seconds_of('Trainer')
  lines.append(f'  {"total":<22} {"":<8} {total:8.1f}')
  if total:
    lines.append(f'  training is {100 * train / total:.0f}% of the wall time')
  if s.epochs:
    val = s.history.get('val_sparse_categorical_accuracy', [])
    lines.append(f'  trained {s.epochs} epochs in {train:.0f} s'
                 + (f', best validation accuracy {max(val):.4f}' if val else ''))
  if s.warm_start:
    lines.append(f'  {s.warm_start["reason"]}')
  if s.time_budget:
    lines.append(f'  {s.time_budget["reason"]}')
  if s.temperature:
    lines.append(f'  {temperature.describe(s.temperature)}')
  lines.append('')
  if s.metrics:
    o = s.metrics.overall
    lines.append(
        f'  test accuracy {o["accuracy"]:.4f}  loss {o["loss"]:.4f}  '
        f'macro precision {o.get("macro_precision", float("nan")):.4f}  '
        f'recall {o.get("macro_recall", float("nan")):.4f}  '
        f'F1 {o.get("macro_f1_score", float("nan")):.4f}  '
        f'ECE {o["ece"]:.4f}  ({o["example_count"]:.0f} test images)')
    lines.append(f'  {"class":<14} {"precision":>9} {"recall":>7} {"F1":>7}')
    for class_id, m in s.metrics.per_class.items():
      lines.append(f'  {features.CLASS_NAMES[class_id]:<14} '
                   f'{m.get("precision", float("nan")):9.4f} '
                   f'{m.get("recall", float("nan")):7.4f} '
                   f'{m.get("f1_score", float("nan")):7.4f}')
  else:
    lines.append('  no evaluation in this run')
  if s.blessing_reason:
    lines.append(f'  {s.blessing_reason}')
  elif s.blessed is not None:
    lines.append(f'  model {"BLESSED" if s.blessed else "NOT blessed"} by the '
                 'Evaluator thresholds')
  lines.append(f'  pushed to {s.pushed_to}' if s.pushed_to
               else '  no new model pushed')
  return '\n'.join(lines)
