"""The monitoring report: a page people read instead of JSON and protos.

`report.html` is rendered from the run's summary (so it can be re-rendered
when the alert and retraining outcome are known), next to a PNG of the served
vs. training distributions and TFDV's own statistics view. The plots read the
histograms TFDV computed; nothing is recounted here.
"""

import html
import os
from typing import Dict, List, Optional, Sequence

import matplotlib
import numpy as np
matplotlib.use('Agg')  # files only, no display
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import features
from monitoring import detectors
from monitoring import statistics

DISTRIBUTIONS_PNG = 'distributions.png'
STATISTICS_HTML = 'statistics.html'
TESTS_PNG = 'tests.png'
REPORT_HTML = 'report.html'
INDEX_HTML = 'index.html'

_STYLE = ('body{font-family:sans-serif;margin:2em;max-width:1200px}'
          'table{border-collapse:collapse;margin:1em 0}'
          'td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}'
          'th{background:#f0f0f0}td:first-child{text-align:left}'
          '.healthy{color:#176f2c}.unhealthy{color:#b00020}'
          'code{white-space:pre-wrap}iframe{width:100%;height:900px;border:0}')


def _feature(stats: statistics_pb2.DatasetFeatureStatisticsList, name: str
             ) -> Optional[statistics_pb2.FeatureNameStatistics]:
  if not stats.datasets:
    return None
  return next((f for f in stats.datasets[0].features
               if list(f.path.step) == [name]), None)


def _histogram(stats, name: str):
  """(edges, fractions) of TFDV's standard histogram of a numeric feature."""
  feature = _feature(stats, name)
  if feature is None:
    return None
  for h in feature.num_stats.histograms:
    if h.type == statistics_pb2.Histogram.STANDARD and h.buckets:
      total = sum(b.sample_count for b in h.buckets) or 1.0
      edges = [b.low_value for b in h.buckets] + [h.buckets[-1].high_value]
      return edges, [b.sample_count / total for b in h.buckets]
  return None


def _class_shares(stats, name: str) -> Optional[List[float]]:
  """Share of each class id in TFDV's rank histogram of a categorical int."""
  feature = _feature(stats, name)
  if feature is None:
    return None
  counts = [0.0] * features.NUM_CLASSES
  for b in feature.string_stats.rank_histogram.buckets:
    if b.label.isdigit() and int(b.label) < features.NUM_CLASSES:
      counts[int(b.label)] = b.sample_count
  total = sum(counts)
  return [c / total for c in counts] if total else None


def plot_distributions(served, training, path: str, training_name: str) -> None:
  """Pixel intensities and predicted classes, served vs. training, as a PNG."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
  for stats, label, style in ((training, training_name, '-'),
                              (served, 'served', '--')):
    found = _histogram(stats, features.IMAGE_KEY)
    if found:
      left.stairs(found[1], found[0], label=label, linestyle=style,
                  linewidth=2)
  left.set_yscale('log')
  left.set_xlabel('pixel value (TFDV histogram buckets)')
  left.set_ylabel('share of pixels')
  left.set_title('Pixel intensity')
  left.legend()
  width = 0.4
  ids = range(features.NUM_CLASSES)
  for offset, stats, label in (
      (-width / 2, training, f'{training_name} labels'),
      (width / 2, served, 'served predictions')):
    shares = _class_shares(stats, statistics.PREDICTED_CLASS_KEY)
    if shares:
      right.bar([i + offset for i in ids], shares, width, label=label)
  right.set_xticks(list(ids), features.CLASS_NAMES, rotation=45, ha='right')
  right.set_ylabel('share of instances')
  right.set_title('Predicted class vs. training labels')
  right.legend()
  fig.tight_layout()
  fig.savefig(path, format='png', dpi=90)
  plt.close(fig)


def plot_tests(ref: detectors.Reference, pixels: Sequence[Sequence[int]],
               probabilities: Sequence[Optional[Sequence[float]]],
               path: str) -> None:
  """What the statistical tests saw: mean images, confidence, features."""
  size = features.IMAGE_SIZE
  rows = [p for p in pixels if len(p) == features.NUM_PIXELS]
  served = (np.asarray(rows, np.float64) if rows
            else np.zeros((0, features.NUM_PIXELS)))
  fig, axes = plt.subplots(2, 3, figsize=(14, 8.5))
  mean = served.mean(axis=0) if len(served) else np.zeros(features.NUM_PIXELS)
  for ax, image, title in ((axes[0, 0], mean, 'served mean image'),
                           (axes[0, 1], ref.mean_image, 'reference mean image')):
    ax.imshow(image.reshape(size, size), cmap='gray', vmin=0, vmax=255)
    ax.set_title(title)
    ax.axis('off')
  diff = (mean - ref.mean_image).reshape(size, size)
  limit = max(float(np.abs(diff).max()), 1.0)
  shown = axes[0, 2].imshow(diff, cmap='RdBu_r', vmin=-limit, vmax=limit)
  axes[0, 2].set_title('served minus reference')
  axes[0, 2].axis('off')
  fig.colorbar(shown, ax=axes[0, 2], fraction=0.046)
  usable = [p for p in probabilities if p is not None and
            len(p) == features.NUM_CLASSES and np.all(np.isfinite(p))]
  bins = np.linspace(0, 1, 21)
  for values, label in ((ref.probabilities.max(axis=1), 'reference'),
                        (np.max(usable, axis=1) if usable else [], 'served')):
    axes[1, 0].hist(values, bins, density=True, histtype='step', linewidth=2,
                    label=label)
  axes[1, 0].set_xlabel('confidence (largest class probability)')
  axes[1, 0].set_title('Model confidence')
  axes[1, 0].legend()
  entropy = lambda p: -np.sum(p * np.log(np.clip(p, 1e-12, 1)), axis=1)
  for values, label in ((entropy(ref.probabilities), 'reference'),
                        (entropy(np.asarray(usable)) if usable else [],
                         'served')):
    axes[1, 1].hist(values, np.linspace(0, np.log(features.NUM_CLASSES), 24),
                    density=True, histtype='step', linewidth=2, label=label)
  axes[1, 1].set_xlabel('entropy of the class probabilities (nats)')
  axes[1, 1].set_title('Model uncertainty')
  axes[1, 1].legend()
  if len(served):
    window = detectors.image_features(served)
    ds = [abs(np.median(window[:, j]) - np.median(ref.image_features[:, j])) /
          (np.std(ref.image_features[:, j]) or 1.0)
          for j in range(len(detectors.FEATURE_NAMES))]
    j = int(np.argmax(ds))
    both = np.concatenate([window[:, j], ref.image_features[:, j]])
    edges = np.linspace(both.min(), both.max() + 1e-9, 31)
    for values, label in ((ref.image_features[:, j], 'reference'),
                          (window[:, j], 'served')):
      axes[1, 2].hist(values, edges, density=True, histtype='step',
                      linewidth=2, label=label)
    axes[1, 2].set_title(f'Most shifted image feature: '
                         f'{detectors.FEATURE_NAMES[j]}')
    axes[1, 2].legend()
  fig.tight_layout()
  fig.savefig(path, format='png', dpi=80)
  plt.close(fig)


def _tests_table(tests: Dict) -> str:
  head = ('<tr><th>test</th><th>statistic</th><th>p-value</th>'
          '<th>Holm level</th><th>instances</th><th>status</th>'
          '<th>what moved most</th></tr>')
  body = ''.join(
      f'<tr><td>{html.escape(r["name"])}</td><td>'
      f'{html.escape(r["statistic_name"])} {r["statistic"]:.4f}</td>'
      f'<td>{r["p_value"]:.3g}</td><td>{r["threshold"]:.3g}</td>'
      f'<td>{r["instances"]}</td><td class="'
      f'{"unhealthy" if r["alarm"] else "healthy"}">'
      f'{"ALARM" if r["alarm"] else "ok"}</td>'
      f'<td style="text-align:left">{html.escape(r["detail"])}</td></tr>'
      for r in tests['results'])
  skipped = ''.join(f'<li>{html.escape(s["test"])}: skipped, '
                    f'{html.escape(s["reason"])}</li>'
                    for s in tests['skipped'])
  return (f'<p>Family-wise false-alarm rate on natural windows: alpha = '
          f'{tests["alpha"]:g} (Holm). Reference: '
          f'{html.escape(tests.get("reference") or "none")}.</p>'
          + (f'<table>{head}{body}</table>' if tests['results'] else '')
          + (f'<ul>{skipped}</ul>' if skipped else ''))


def write_statistics_view(served, training, path: str,
                          training_name: str) -> None:
  """TFDV's (Facets) side-by-side view of the two statistics."""
  page = tfdv.utils.display_util.get_statistics_html(
      served, training, lhs_name='served', rhs_name=training_name)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(page)


def _page(title: str, body: str) -> str:
  return (f'<!doctype html><html><head><meta charset="utf-8"><title>'
          f'{html.escape(title)}</title><style>{_STYLE}</style></head>'
          f'<body>{body}</body></html>')


def _measurements_table(rows: List[Dict]) -> str:
  head = ('<tr><th>check</th><th>feature</th><th>measure</th><th>value</th>'
          '<th>threshold</th><th>status</th></tr>')
  body = ''.join(
      f'<tr><td>{html.escape(m["check"])}</td><td>{html.escape(m["feature"])}'
      f'</td><td>{html.escape(m["measure"])}</td><td>{m["value"]:.5f}</td>'
      f'<td>{m["threshold"]:g}</td><td class="'
      f'{"unhealthy" if m["alert"] else "healthy"}">'
      f'{"ALERT" if m["alert"] else "ok"}</td></tr>' for m in rows)
  return f'<table>{head}{body}</table>'


def _facts(summary: Dict) -> str:
  w = summary['window']
  rows = [
      ('served instances', f'{summary["instances"]} from ' + (
          f'BigQuery table {w["bq_table"]}' if w.get('bq_table') else
          f'{w["files"]} log file(s)') + f', {w["first"]} to {w["last"]}'),
      ('window', ', '.join(filter(None, (
          w.get('since') and f'since {w["since"]}',
          w.get('last_n') and f'newest {w["last_n"]}'))) or 'all logs'),
      ('model versions', ', '.join(f'{v}: {n}' for v, n in
                                   summary['model_versions'].items())),
      ('baseline', summary['baseline']['description']),
      ('previous window', summary['previous_run'] or
       'none (first run: no drift check)'),
      ('unreadable log rows', str(w['skipped_rows'])),
  ]
  body = ''.join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}'
                 '</td></tr>' for k, v in rows)
  return f'<table>{body}</table>'


def render(summary: Dict, run_dir: str) -> str:
  """Writes `report.html` for one run from its summary; returns the path."""
  verdict = summary['verdict']
  parts = [f'<h1>Monitoring {html.escape(summary["time"])}: <span class="'
           f'{verdict}">{verdict.upper()}</span></h1>', _facts(summary)]
  anomalies = summary['anomalies']
  parts.append(f'<h2>Anomalies ({len(anomalies)})</h2>')
  parts.append('<ul>' + ''.join(f'<li><code>{html.escape(a)}</code></li>'
                                for a in anomalies) + '</ul>' if anomalies
               else '<p>None: the served data matches the schema, the '
                    'training data and the previous window.</p>')
  examples = summary['window']['skipped_examples']
  if examples:
    parts.append('<p>Unreadable rows (skipped, first ones):</p><ul>' + ''.join(
        f'<li><code>{html.escape(e)}</code></li>' for e in examples) + '</ul>')
  parts += ['<h2>Measured divergences</h2>',
            _measurements_table(summary['measurements'])]
  if summary.get('tests'):
    parts += ['<h2>Statistical tests</h2>', _tests_table(summary['tests'])]
  if os.path.exists(os.path.join(run_dir, TESTS_PNG)):
    parts.append(f'<img src="{TESTS_PNG}" alt="served vs. reference">')
  for key, title in (('alert', 'Alert'), ('retraining', 'Retraining')):
    if summary.get(key):
      parts.append(f'<h2>{title}</h2><p>{html.escape(summary[key]["message"])}'
                   '</p>')
  if os.path.exists(os.path.join(run_dir, DISTRIBUTIONS_PNG)):
    parts += ['<h2>Distributions</h2>',
              f'<img src="{DISTRIBUTIONS_PNG}" alt="served vs. training">']
  if os.path.exists(os.path.join(run_dir, STATISTICS_HTML)):
    parts += ['<h2>TFDV statistics: served vs. training</h2>',
              f'<p><a href="{STATISTICS_HTML}">open on its own</a></p>',
              f'<iframe src="{STATISTICS_HTML}"></iframe>']
  parts.append('<h2>Files</h2><ul>' + ''.join(
      f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>'
      for f in sorted(os.listdir(run_dir))) + '</ul>')
  path = os.path.join(run_dir, REPORT_HTML)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(_page(f'monitoring {summary["time"]}', ''.join(parts)))
  return path


def render_index(entries: List[Dict], path: str) -> None:
  """Every monitoring run, newest first, linking to its report."""
  head = ('<tr><th>run</th><th>verdict</th><th>instances</th><th>first</th>'
          '<th>last</th><th>model</th><th>baseline span</th><th>anomalies</th>'
          '<th>retraining</th></tr>')
  rows = ''.join(
      f'<tr><td><a href="{html.escape(e["report"])}">{html.escape(e["time"])}'
      f'</a></td><td class="{e["verdict"]}">{e["verdict"]}</td>'
      f'<td>{e["instances"]}</td><td>{html.escape(e["first"])}</td>'
      f'<td>{html.escape(e["last"])}</td>'
      f'<td>{html.escape(str(e.get("model_version") or ""))}</td>'
      f'<td>{e.get("baseline_span") or ""}</td><td>{e["anomalies"]}</td>'
      f'<td>{html.escape(e.get("retraining") or "")}</td></tr>'
      for e in reversed(entries))
  with open(path, 'w', encoding='utf-8') as f:
    f.write(_page('monitoring runs', '<h1>Monitoring runs, newest first</h1>'
                  f'<table>{head}{rows}</table>'))
