"""The HTML/PNG report of the runs: what people would rather look at than logs.

`HOME/reports/index.html` holds every run side by side (span, state, test
metrics, blessing, push), the newest evaluation per class with its confusion
matrix (PNG), and TFDV's statistics view of the newest span.
"""

import base64
import html
import io
import os
from typing import List, Optional

from absl import logging
import matplotlib
matplotlib.use('Agg')  # files only, no display
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

from models import features
from models import temperature
from pipeline import configs
from pipeline import summary as summary_lib

CONFUSION_PNG = 'confusion_matrix.png'
HISTORY_PNG = 'training_curves.png'
STATISTICS_HTML = 'statistics.html'


def _fmt(value: Optional[float], digits: int = 4) -> str:
  return '' if value is None else f'{value:.{digits}f}'


def save_png(fig, path: str) -> None:
  """Writes a figure as a PNG (local or gs://) and closes it."""
  with tf.io.gfile.GFile(path, 'wb') as f:
    fig.savefig(f, format='png', dpi=100)
  plt.close(fig)


def thumbnail_base64(image: np.ndarray, scale: int = 3) -> str:
  """A [28, 28] uint8 image as a base64 PNG, enlarged `scale` times, dark on
  light (for `<img src="data:image/png;base64,...">`)."""
  buf = io.BytesIO()
  plt.imsave(buf, np.kron(image, np.ones((scale, scale), np.uint8)),
             cmap='gray_r', vmin=0, vmax=255, format='png')
  return base64.b64encode(buf.getvalue()).decode('ascii')


def label_class_axes(ax) -> range:
  """Class names on the axes of an [actual][predicted] matrix plot."""
  ticks = range(features.NUM_CLASSES)
  ax.set_xticks(ticks, features.CLASS_NAMES, rotation=45, ha='right')
  ax.set_yticks(ticks, features.CLASS_NAMES)
  ax.set_xlabel('predicted')
  ax.set_ylabel('actual')
  return ticks


def plot_confusion(confusion: List[List[float]], path: str) -> None:
  """Row-normalized confusion matrix with counts, as a PNG."""
  fig, ax = plt.subplots(figsize=(8, 7))
  rows = [sum(r) or 1.0 for r in confusion]
  normalized = [[v / rows[i] for v in r] for i, r in enumerate(confusion)]
  ax.imshow(normalized, cmap='Blues', vmin=0, vmax=1)
  ticks = label_class_axes(ax)
  for i in ticks:
    for j in ticks:
      if confusion[i][j]:
        ax.text(j, i, f'{confusion[i][j]:.0f}', ha='center', va='center',
                fontsize=8, color='white' if normalized[i][j] > 0.5 else 'black')
  ax.set_title('Test-set confusion matrix (rows: actual class)')
  fig.tight_layout()
  save_png(fig, path)


def plot_history(history, path: str) -> None:
  """Per-epoch loss and accuracy, training vs. validation, as a PNG."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, metric in zip(axes, ('loss', 'sparse_categorical_accuracy')):
    for prefix, style in (('', '-'), ('val_', '--')):
      values = history.get(prefix + metric)
      if values:
        ax.plot(range(1, len(values) + 1), values, style,
                label=('validation ' if prefix else 'training ') + metric)
    ax.set_xlabel('epoch')
    ax.legend()
    ax.grid(alpha=0.3)
  fig.tight_layout()
  save_png(fig, path)


def _runs_table(summaries: List[summary_lib.RunSummary]) -> str:
  head = ('<tr><th>run</th><th>span</th><th>outcome</th><th>seconds</th>'
          '<th>accuracy</th><th>loss</th><th>macro precision</th>'
          '<th>macro recall</th><th>macro F1</th><th>ECE</th><th>blessed</th>'
          '<th>pushed</th></tr>')
  rows = []
  for s in reversed(summaries):
    o = s.metrics.overall if s.metrics else {}
    rows.append(
        '<tr>' + ''.join(f'<td>{html.escape(str(v))}</td>' for v in (
            s.run_id, s.span or '', s.outcome, f'{s.total_seconds:.0f}',
            _fmt(o.get('accuracy')), _fmt(o.get('loss')),
            _fmt(o.get('macro_precision')), _fmt(o.get('macro_recall')),
            _fmt(o.get('macro_f1_score')), _fmt(o.get('ece')),
            '' if s.blessed is None else ('yes' if s.blessed else 'NO'),
            os.path.basename(s.pushed_to) if s.pushed_to else '')) + '</tr>')
  return f'<table>{head}{"".join(rows)}</table>'


def _class_table(metrics: summary_lib.EvalMetrics) -> str:
  head = ('<tr><th>class</th><th>test images</th><th>precision</th>'
          '<th>recall</th><th>F1</th></tr>')
  rows = ''.join(
      f'<tr><td>{html.escape(features.CLASS_NAMES[c])}</td>'
      f'<td>{m["count"]:.0f}</td><td>{_fmt(m["precision"])}</td>'
      f'<td>{_fmt(m["recall"])}</td><td>{_fmt(m["f1_score"])}</td></tr>'
      for c, m in metrics.per_class.items())
  return f'<table>{head}{rows}</table>'


def _components_table(s: summary_lib.RunSummary) -> str:
  rows = ''.join(f'<tr><td>{c.node_id}</td><td>{c.state}</td>'
                 f'<td>{c.seconds:.1f}</td></tr>' for c in s.components)
  return ('<table><tr><th>component</th><th>state</th><th>seconds</th></tr>'
          f'{rows}</table>')


def _write_statistics(cfg: configs.PipelineConfig, out_dir: str) -> bool:
  """TFDV's own statistics view of the newest StatisticsGen output."""
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  store = summary_lib.open_store(cfg)
  stats = store.get_artifacts_by_type('ExampleStatistics')
  if not stats:
    return False
  newest = max(stats, key=lambda a: a.id)
  artifact = standard_artifacts.ExampleStatistics()
  artifact.set_mlmd_artifact(newest)
  splits = artifact_utils.decode_split_names(artifact.split_names)
  lhs = stats_artifact_utils.load_statistics(artifact, splits[0]).proto()
  rhs = None
  if features.TEST_SPLIT in splits and splits[0] != features.TEST_SPLIT:
    rhs = stats_artifact_utils.load_statistics(
        artifact, features.TEST_SPLIT).proto()
  page = tfdv.utils.display_util.get_statistics_html(
      lhs, rhs, lhs_name=splits[0], rhs_name=features.TEST_SPLIT)
  with tf.io.gfile.GFile(os.path.join(out_dir, STATISTICS_HTML), 'w') as f:
    f.write(page)
  return True


def _describe(feature, field: str) -> str:
  if field != 'type' and not feature.HasField(field):
    return '(unset)'
  text = ' '.join(str(getattr(feature, field)).split())
  return text or ('scalar' if field == 'shape' else '(empty)')


def schema_differences(curated, inferred) -> List[str]:
  """Where the schema SchemaGen infers from the data differs from the curated one.

  A reviewer reads this before editing `schema/schema.pbtxt`: a difference is
  either something the curated schema states on purpose (a domain, an
  environment) or a sign that the data changed.
  """
  lines = []
  curated_f = {f.name: f for f in curated.feature}
  inferred_f = {f.name: f for f in inferred.feature}
  for name in sorted(set(curated_f) | set(inferred_f)):
    if name not in inferred_f:
      lines.append(f"feature '{name}': in the curated schema, not in the data")
      continue
    if name not in curated_f:
      lines.append(f"feature '{name}': in the data, not in the curated schema")
      continue
    c, i = curated_f[name], inferred_f[name]
    for field in ('type', 'shape', 'int_domain', 'presence'):
      if getattr(c, field) != getattr(i, field):
        lines.append(f"feature '{name}' {field}: curated "
                     f'{_describe(c, field)}; inferred {_describe(i, field)}')
  return lines


def _schema_section(cfg: configs.PipelineConfig) -> str:
  """The curated-vs-inferred diff for the newest InferredSchema output."""
  from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
  store = summary_lib.open_store(cfg)
  inferred = [a for a in store.get_artifacts_by_type('Schema')
              if 'InferredSchema' in a.uri]
  if not inferred:
    return ''
  reader = io_utils.SchemaReader()
  newest = max(inferred, key=lambda a: a.id)
  diff = schema_differences(
      reader.read(os.path.join(cfg.schema_dir, 'schema.pbtxt')),
      reader.read(io_utils.get_only_uri_in_dir(newest.uri)))
  items = ''.join(f'<li><code>{html.escape(d)}</code></li>' for d in diff)
  return ('<h2>Curated vs. inferred schema (newest span)</h2>'
          + (f'<ul>{items}</ul>' if diff else '<p>No differences.</p>'))


STYLE = ('body{font-family:sans-serif;margin:2em;max-width:1200px}'
          'table{border-collapse:collapse;margin:1em 0}'
          'td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}'
          'th{background:#f0f0f0}td:first-child{text-align:left}')


def write_page(out_dir: str, title: str, parts: List[str],
               style: str = STYLE) -> str:
  """Writes `out_dir/index.html` from HTML fragments; returns its path."""
  index = os.path.join(out_dir, 'index.html')
  with tf.io.gfile.GFile(index, 'w') as f:
    f.write(f'<!doctype html><html><head><meta charset="utf-8"><title>'
            f'{html.escape(title)}</title><style>{style}</style>'
            f'</head><body>{"".join(parts)}</body></html>')
  return index


def write_report(cfg: configs.PipelineConfig,
                 output_dir: Optional[str] = None) -> str:
  """Writes the report; returns the path of its index.html."""
  out_dir = output_dir or os.path.join(os.path.dirname(cfg.pipeline_root),
                                       'reports')
  store = summary_lib.open_store(cfg)  # first: a missing home is an error
  tf.io.gfile.makedirs(out_dir)
  summaries = [summary_lib.summarize(cfg, run_id, store)
               for run_id in summary_lib.run_ids(store)]
  parts = [f'<h1>{html.escape(cfg.pipeline_name)}: pipeline report</h1>',
           '<h2>Runs, newest first</h2>', _runs_table(summaries)]
  latest_eval = next((s for s in reversed(summaries) if s.metrics), None)
  if latest_eval:
    parts += [f'<h2>Test-set evaluation of run {html.escape(latest_eval.run_id)}'
              '</h2>', _class_table(latest_eval.metrics)]
    plot_confusion(latest_eval.metrics.confusion,
                   os.path.join(out_dir, CONFUSION_PNG))
    parts.append(f'<img src="{CONFUSION_PNG}" alt="confusion matrix">')
  latest_training = next((s for s in reversed(summaries) if s.history), None)
  if latest_training:
    plot_history(latest_training.history, os.path.join(out_dir, HISTORY_PNG))
    parts += [f'<h2>Training of run {html.escape(latest_training.run_id)} '
              f'({latest_training.epochs} epochs)</h2>',
              f'<img src="{HISTORY_PNG}" alt="training curves">']
    lines = []
    if latest_training.warm_start:
      lines.append(latest_training.warm_start['reason'])
    if latest_training.time_budget:
      lines.append(latest_training.time_budget['reason'])
    if latest_training.temperature:
      lines.append(temperature.describe(latest_training.temperature))
    for line in lines:
      parts.append(f'<p>{html.escape(line[0].upper() + line[1:])}.</p>')
  if summaries:
    parts += ['<h2>Component wall times of the newest run</h2>',
              _components_table(summaries[-1])]
  parts.append(_schema_section(cfg))
  try:
    if _write_statistics(cfg, out_dir):
      parts.append(f'<h2>Data</h2><p><a href="{STATISTICS_HTML}">TFDV '
                   'statistics of the newest span</a> (train vs. test)</p>')
  except Exception as e:  # pylint: disable=broad-except
    # The statistics view is a convenience; the metrics above still stand.
    logging.warning('Statistics view not written: %s', e)
  return write_page(out_dir, cfg.pipeline_name, parts)
