"""Compare two evaluated models the way TFMA users do, with error bars.

Each side is a run's candidate model (its TFMA EvalResult, loaded with
`tfma.load_eval_result`), the baseline TFMA evaluated it against, or a
SavedModel directory (no EvalResult). Both models predict the same test
images (`predictions.py`: the Evaluator writes no per-example predictions),
so the comparison is paired (`paired.py`): McNemar's exact test overall and
per true class, 95 % paired-bootstrap intervals, the confusion-matrix
difference and the images whose prediction changed. `write_html` draws it.
"""

import base64
import dataclasses
import html
import io
import os
from typing import Dict, List, Optional

import matplotlib
matplotlib.use('Agg')  # files only, no display
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from tensorflow_model_analysis.writers import eval_config_writer

from models import features
from pipeline import configs
from pipeline import paired
from pipeline import predictions
from pipeline import report
from pipeline import summary as summary_lib
from pipeline.errors import UserError

MAX_THUMBNAILS = 48  # per group of changed predictions
PAGE = 'index.html'


class CompareError(UserError):
  """Nothing to compare, or a run/model that cannot be found."""


@dataclasses.dataclass(frozen=True)
class CompareConfig:
  pipeline: configs.PipelineConfig
  a: Optional[str] = None       # run id or SavedModel dir (the reference)
  b: Optional[str] = None       # run id or SavedModel dir (the challenger)
  output_dir: Optional[str] = None  # default HOME/reports/compare
  resamples: int = paired.RESAMPLES


@dataclasses.dataclass(frozen=True)
class Side:
  label: str                    # what a person reads: 'candidate of run X'
  model_path: str
  metrics: Optional[summary_lib.EvalMetrics]  # TFMA's, if evaluated
  examples_uri: Optional[str] = None          # the run's Examples artifact


@dataclasses.dataclass(frozen=True)
class Comparison:
  a: Side
  b: Side
  examples_uri: str
  labels: np.ndarray
  images: np.ndarray
  predicted_a: np.ndarray
  predicted_b: np.ndarray
  paired: paired.PairedComparison
  holm_p: Dict[int, float]      # per-class p-values, Holm-adjusted over classes


def _evaluation(store, run_id: str):
  """(ModelEvaluation uri, Model uri, Examples uri) of a run, or None."""
  outputs = summary_lib.run_outputs(store, run_id)
  evals = [a for a in outputs.get('ModelEvaluation', []) if os.path.isdir(a.uri)]
  if not evals:
    return None
  model = outputs.get('Model', [None])[0]
  examples = outputs.get('Examples', [None])[0]
  return (evals[0].uri, model.uri if model else None,
          examples.uri if examples else None)


def _model_locations(eval_uri: str) -> Dict[str, str]:
  """Model name -> SavedModel path, as TFMA recorded them for this result."""
  _, _, _, locations = eval_config_writer.load_eval_run(eval_uri)
  return dict(locations)


def _run_side(store, run_id: str, which: str = 'candidate') -> Side:
  found = _evaluation(store, run_id)
  if found is None:
    raise CompareError(f'run {run_id} has no evaluation (it stopped before '
                       'the Evaluator); pick an evaluated run')
  eval_uri, model_uri, examples_uri = found
  locations = _model_locations(eval_uri)
  if which == 'baseline':
    if 'baseline' not in locations:
      raise CompareError(f'run {run_id} was evaluated without a baseline')
    return Side(f'baseline of run {run_id}', locations['baseline'],
                summary_lib.load_eval_metrics(eval_uri, 'baseline'),
                examples_uri)
  name = 'candidate' if 'baseline' in locations else None
  path = locations.get(name or '', model_uri) or model_uri
  return Side(f'run {run_id}', path,
              summary_lib.load_eval_metrics(eval_uri, name), examples_uri)


def _side(store, ref: str) -> Side:
  if os.path.isdir(ref):
    predictions.saved_model_dir(ref)  # raises if there is no SavedModel
    return Side(f'model {ref}', ref, None)
  known = summary_lib.run_ids(store)
  matches = [r for r in known if r == ref] or [r for r in known
                                               if r.startswith(ref)]
  if len(matches) != 1:
    raise CompareError(
        f'{ref!r} is neither a SavedModel directory nor exactly one run id '
        f'({len(matches)} runs match); runs: {", ".join(known[-5:]) or "none"}')
  return _run_side(store, matches[0])


def resolve(cfg: CompareConfig):
  """The two sides: explicit, else the newest run's candidate vs. its baseline,
  else the two newest evaluated runs."""
  store = summary_lib.open_store(cfg.pipeline)
  if cfg.a and cfg.b:
    return _side(store, cfg.a), _side(store, cfg.b)
  if cfg.a:  # one run: its candidate against its baseline
    b = _side(store, cfg.a)
    run_id = b.label.split()[-1]
    return _run_side(store, run_id, 'baseline'), b
  evaluated = [r for r in summary_lib.run_ids(store)
               if _evaluation(store, r) is not None]
  if not evaluated:
    raise CompareError('no evaluated run yet: run `fmnist run` first')
  newest = evaluated[-1]
  if 'baseline' in _model_locations(_evaluation(store, newest)[0]):
    return _run_side(store, newest, 'baseline'), _run_side(store, newest)
  if len(evaluated) < 2:
    raise CompareError(f'only one evaluated run ({newest}) and it has no '
                       'baseline: nothing to compare yet')
  return _run_side(store, evaluated[-2]), _run_side(store, newest)


def compare(cfg: CompareConfig) -> Comparison:
  """Predictions of both sides on the same test images, tested in pairs."""
  a, b = resolve(cfg)
  examples_uri = b.examples_uri or a.examples_uri
  if examples_uri is None:
    store = summary_lib.open_store(cfg.pipeline)
    found = [_evaluation(store, r) for r in summary_lib.run_ids(store)]
    found = [f for f in found if f and f[2]]
    if not found:
      raise CompareError('no test examples to compare on: run the pipeline')
    examples_uri = found[-1][2]
  split = predictions.read_split(examples_uri)
  pa = predictions.predict(a.model_path, split.serialized)
  pb = predictions.predict(b.model_path, split.serialized)
  result = paired.compare_predictions(split.labels, pa, pb,
                                      features.NUM_CLASSES,
                                      resamples=cfg.resamples)
  holm = paired.holm([result.per_class[c].test.p_value
                      for c in range(features.NUM_CLASSES)])
  return Comparison(a=a, b=b, examples_uri=examples_uri, labels=split.labels,
                    images=split.images, predicted_a=pa, predicted_b=pb,
                    paired=result, holm_p=dict(enumerate(holm)))


def evaluation_uris(cfg: configs.PipelineConfig) -> List[str]:
  """TFMA output directories of the evaluated runs, oldest first (for
  notebooks: `tfma.load_eval_result(uri, model_name='baseline')`, ...)."""
  store = summary_lib.open_store(cfg)
  found = [_evaluation(store, r) for r in summary_lib.run_ids(store)]
  uris = []
  for f in found:
    if f and f[0] not in uris:
      uris.append(f[0])
  return uris


def eval_results(cfg: configs.PipelineConfig) -> list:
  """The candidate's `tfma.EvalResult` of each evaluated run, oldest first:
  what `tfma.view.render_time_series` takes (via `tfma.make_eval_results`)."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  results = []
  for uri in evaluation_uris(cfg):
    name = 'candidate' if 'candidate' in _model_locations(uri) else None
    results.append(tfma.load_eval_result(uri, model_name=name))
  return results


def _ci(i: paired.Interval, signed=False) -> str:
  return paired.interval_text(i, signed)


def format_text(c: Comparison) -> str:
  """The side-by-side table `fmnist compare` prints."""
  o = c.paired.overall
  t = o.test
  lines = [f'A: {c.a.label}', f'B: {c.b.label}',
           f'on {t.n} test images of {c.examples_uri}', '']
  lines.append(f'  {"":<14} {"A":>7} {"B":>7} {"B-A":>8}  '
               f'{"95% CI of B-A":<20} {"McNemar p":>9}')
  lines.append(f'  {"accuracy":<14} {t.accuracy_a:7.4f} {t.accuracy_b:7.4f} '
               f'{t.delta:+8.4f}  {_ci(o.delta, True):<20} {t.p_value:9.3g}')
  ma = c.a.metrics.overall if c.a.metrics else {}
  mb = c.b.metrics.overall if c.b.metrics else {}
  for key, name in (('loss', 'loss (TFMA)'), ('ece', 'ECE (TFMA)'),
                    ('macro_f1_score', 'macro F1')):
    if key in ma and key in mb:
      lines.append(f'  {name:<14} {ma[key]:7.4f} {mb[key]:7.4f} '
                   f'{mb[key] - ma[key]:+8.4f}')
  lines.append(f'  accuracy 95% CI: A {_ci(o.accuracy_a)}  B {_ci(o.accuracy_b)}'
               f' (paired bootstrap); B right/A wrong {t.only_b_right}, '
               f'A right/B wrong {t.only_a_right}')
  lines += ['', f'  {"class":<12} {"n":>5} {"recall A":>8} {"recall B":>8} '
            f'{"B-A":>8}  {"95% CI":<20} {"B+":>4} {"A+":>4} {"p":>7} '
            f'{"Holm p":>7}']
  for k, e in c.paired.per_class.items():
    s = e.test
    lines.append(f'  {features.CLASS_NAMES[k]:<12} {s.n:5d} {s.accuracy_a:8.4f} '
                 f'{s.accuracy_b:8.4f} {s.delta:+8.4f}  '
                 f'{_ci(e.delta, True):<20} {s.only_b_right:4d} '
                 f'{s.only_a_right:4d} {s.p_value:7.3g} {c.holm_p[k]:7.3g}')
  verdict = ('B is significantly ' + ('better' if t.delta > 0 else 'worse')
             if t.p_value < 0.05 else 'no significant difference')
  lines += ['', f'  overall: {verdict} (McNemar exact, alpha 0.05); '
            f'{len(c.paired.changed)} images changed prediction']
  return '\n'.join(lines)


def _png(fig) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=100)
  plt.close(fig)
  return base64.b64encode(buf.getvalue()).decode('ascii')


def plot_deltas(c: Comparison) -> str:
  """Per-class and overall accuracy difference B-A with 95 % intervals."""
  names = ['overall'] + list(features.CLASS_NAMES)
  estimates = [c.paired.overall] + [c.paired.per_class[k]
                                    for k in range(features.NUM_CLASSES)]
  deltas = np.array([e.test.delta for e in estimates])
  low = deltas - np.array([e.delta.low for e in estimates])
  high = np.array([e.delta.high for e in estimates]) - deltas
  fig, ax = plt.subplots(figsize=(8, 5))
  y = np.arange(len(names))[::-1]
  colors = ['#1a7f37' if e.delta.low > 0 else '#cf222e' if e.delta.high < 0
            else '#57606a' for e in estimates]
  for yi, d, lo, hi, col in zip(y, deltas, low, high, colors):
    ax.errorbar(d, yi, xerr=[[max(lo, 0)], [max(hi, 0)]], fmt='o', color=col,
                capsize=4)
  ax.axvline(0, color='black', lw=0.8)
  ax.set_yticks(y, names)
  ax.set_xlabel('accuracy (recall within class) of B minus A, 95 % paired '
                'bootstrap interval')
  ax.grid(axis='x', alpha=0.3)
  ax.set_title('Where B differs from A (green: better, red: worse, grey: '
               'within noise)', fontsize=10)
  fig.tight_layout()
  return _png(fig)


def plot_confusion_difference(c: Comparison) -> str:
  """Confusion matrix of B minus that of A (counts)."""
  diff = np.array(c.paired.confusion_b) - np.array(c.paired.confusion_a)
  # Colour says better/worse: more on the diagonal is good, more off it bad.
  goodness = np.where(np.eye(len(diff), dtype=bool), diff, -diff)
  fig, ax = plt.subplots(figsize=(8, 7))
  limit = max(1, int(np.abs(diff).max()))
  ax.imshow(goodness, cmap='RdBu', vmin=-limit, vmax=limit)
  ticks = report.label_class_axes(ax)
  for i in ticks:
    for j in ticks:
      if diff[i, j]:
        ax.text(j, i, f'{diff[i, j]:+d}', ha='center', va='center', fontsize=8)
  ax.set_title('Confusion matrix B minus A (counts; blue: better for B, '
               'red: worse)', fontsize=10)
  fig.tight_layout()
  return _png(fig)


def _changed_section(c: Comparison) -> str:
  y, pa, pb = c.labels, c.predicted_a, c.predicted_b
  groups = (('Fixed by B (A wrong, B right)', (pa != y) & (pb == y)),
            ('Broken by B (A right, B wrong)', (pa == y) & (pb != y)),
            ('Both wrong, differently', (pa != y) & (pb != y) & (pa != pb)))
  parts = []
  for title, mask in groups:
    idx = np.flatnonzero(mask)
    cells = []
    for i in idx[:MAX_THUMBNAILS]:
      cells.append(
          f'<figure><img src="data:image/png;base64,{report.thumbnail_base64(c.images[i])}"'
          f' alt="test image {i}"><figcaption>#{i} {html.escape(features.CLASS_NAMES[y[i]])}'
          f'<br>A: {html.escape(features.CLASS_NAMES[pa[i]])}'
          f'<br>B: {html.escape(features.CLASS_NAMES[pb[i]])}</figcaption>'
          '</figure>')
    more = (f' (first {MAX_THUMBNAILS} shown)' if len(idx) > MAX_THUMBNAILS
            else '')
    parts.append(f'<h3>{title}: {len(idx)}{more}</h3>'
                 f'<div class="grid">{"".join(cells)}</div>')
  return ''.join(parts)


_STYLE = ('body{font-family:sans-serif;margin:2em;max-width:1200px}'
          'table{border-collapse:collapse;margin:1em 0}'
          'td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}'
          'th{background:#f0f0f0}td:first-child{text-align:left}'
          '.grid{display:flex;flex-wrap:wrap;gap:6px}'
          'figure{margin:0;width:96px;font-size:11px;text-align:center}'
          '.better{color:#1a7f37}.worse{color:#cf222e}')


def _cls(e: paired.Estimate) -> str:
  return ('better' if e.delta.low > 0 else 'worse' if e.delta.high < 0
          else '')


def _tfma_class_cells(c: Comparison, k: int) -> str:
  """Per-class F1 and precision from both EvalResults (no intervals)."""
  if not (c.a.metrics and c.b.metrics):
    return ''
  a, b = c.a.metrics.per_class[k], c.b.metrics.per_class[k]
  return ''.join(f'<td>{v:.4f}</td>' for v in (
      a['f1_score'], b['f1_score'], a['precision'], b['precision']))


def write_html(c: Comparison, out_dir: str) -> str:
  """The comparison page with embedded PNGs; returns its path."""
  tf.io.gfile.makedirs(out_dir)
  o = c.paired.overall
  t = o.test
  rows = [('accuracy', f'{t.accuracy_a:.4f} {_ci(o.accuracy_a)}',
           f'{t.accuracy_b:.4f} {_ci(o.accuracy_b)}',
           f'<span class="{_cls(o)}">{t.delta:+.4f} {_ci(o.delta, True)}</span>',
           f'{t.p_value:.3g} ({t.only_b_right} B+ / {t.only_a_right} A+)')]
  ma = c.a.metrics.overall if c.a.metrics else {}
  mb = c.b.metrics.overall if c.b.metrics else {}
  for key, name in (('accuracy', 'accuracy (TFMA)'), ('loss', 'loss (TFMA)'),
                    ('ece', 'ECE (TFMA)'), ('macro_precision', 'macro precision'),
                    ('macro_recall', 'macro recall'), ('macro_f1_score', 'macro F1')):
    if key in ma and key in mb:
      rows.append((name, f'{ma[key]:.4f}', f'{mb[key]:.4f}',
                   f'{mb[key] - ma[key]:+.4f}', ''))
  overall = ''.join('<tr>' + ''.join(f'<td>{v}</td>' for v in r) + '</tr>'
                    for r in rows)
  per_class = []
  for k, e in c.paired.per_class.items():
    s = e.test
    per_class.append(
        f'<tr><td>{html.escape(features.CLASS_NAMES[k])}</td><td>{s.n}</td>'
        f'<td>{s.accuracy_a:.4f}</td><td>{s.accuracy_b:.4f}</td>'
        f'<td class="{_cls(e)}">{s.delta:+.4f} {_ci(e.delta, True)}</td>'
        f'<td>{s.only_b_right}</td><td>{s.only_a_right}</td>'
        f'<td>{s.p_value:.3g}</td><td>{c.holm_p[k]:.3g}</td>'
        f'{_tfma_class_cells(c, k)}</tr>')
  tfma_head = ('<th>F1 A (TFMA)</th><th>F1 B (TFMA)</th><th>precision A</th>'
               '<th>precision B</th>' if c.a.metrics and c.b.metrics else '')
  page = f'''<!doctype html><html><head><meta charset="utf-8">
<title>A vs B</title><style>{_STYLE}</style></head><body>
<h1>Comparison on {t.n} test images</h1>
<p>A: <b>{html.escape(c.a.label)}</b> ({html.escape(c.a.model_path)})<br>
B: <b>{html.escape(c.b.label)}</b> ({html.escape(c.b.model_path)})<br>
Test images: {html.escape(c.examples_uri)}</p>
<p>Both models predicted the same images. Intervals: 95 % paired bootstrap
({paired.RESAMPLES} resamples of the images; per class within the class).
p: McNemar's exact test on per-image correctness (B+: only B right, A+: only A
right); Holm p adjusts the ten class tests for multiplicity. TFMA rows are the
Evaluator's own numbers (each on its run's test split).</p>
<h2>Overall</h2><table><tr><th>metric</th><th>A</th><th>B</th><th>B - A</th>
<th>McNemar p</th></tr>{overall}</table>
<h2>Per class (accuracy within the true class = recall)</h2>
<img src="data:image/png;base64,{plot_deltas(c)}" alt="per-class deltas">
<table><tr><th>class</th><th>n</th><th>A</th><th>B</th><th>B - A [95 % CI]</th>
<th>B+</th><th>A+</th><th>p</th><th>Holm p</th>{tfma_head}</tr>
{"".join(per_class)}</table>
<h2>Confusion-matrix difference</h2>
<img src="data:image/png;base64,{plot_confusion_difference(c)}"
 alt="confusion difference">
<h2>Images whose prediction changed ({len(c.paired.changed)})</h2>
{_changed_section(c)}
</body></html>'''
  path = os.path.join(out_dir, PAGE)
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(page)
  return path


def run(cfg: CompareConfig):
  """Compares and writes the page; returns (comparison, page path)."""
  c = compare(cfg)
  out_dir = cfg.output_dir or os.path.join(
      os.path.dirname(cfg.pipeline.pipeline_root), 'reports', 'compare')
  return c, write_html(c, out_dir)
