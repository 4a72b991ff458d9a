"""`fmnist explore`: what is in a span, before any model sees it.

Reads one span as `fmnist ingest` wrote it (default: the newest under
HOME/data) and writes HOME/reports/explore/: class balance per split, mean and
standard-deviation image per class, PCA and t-SNE embeddings coloured by
class, class-to-class similarity next to the newest evaluated model's
confusion matrix (from MLMD/TFMA, when a run was evaluated), near-duplicates
between the official train images (train + eval splits) and the test images,
and likely label errors, each with thumbnails on the page and a CSV to review.

Class counts come from the pipeline's TFDV statistics of the span when a run
computed them (StatisticsGen, found through MLMD lineage: tfdv_counts.py), and
are counted from the labels read here otherwise (right after ingest); the page
says which, and whether the two agree.
How duplicates and label issues are found: duplicates.py, label_issues.py.
"""

import contextlib
import dataclasses
import html
import logging
import os
import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from models import features
from pipeline import configs
from pipeline import report
from pipeline import summary
from pipeline.explore import data
from pipeline.explore import duplicates as duplicates_lib
from pipeline.explore import embedding
from pipeline.explore import label_issues as label_issues_lib
from pipeline.explore import page
from pipeline.explore import plots
from pipeline.explore import tfdv_counts
from pipeline.explore.data import ExploreError

__all__ = ['ExploreConfig', 'ExploreError', 'Result', 'run', 'format_result']

DEFAULT_SAMPLE = 3000  # images in the t-SNE


@dataclasses.dataclass(frozen=True)
class ExploreConfig:
  home: str
  span: Optional[int] = None        # default: the newest span
  output_dir: Optional[str] = None  # default: HOME/reports/explore
  sample: int = DEFAULT_SAMPLE
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class Result:
  page: str
  span: int
  counts: Dict[str, int]            # images per split
  exact_duplicates: int             # pairs
  near_duplicates: int              # pairs (exact ones included)
  duplicate_test_images: int
  disagreeing_duplicates: int       # pairs whose labels differ
  threshold: float
  label_issues: int
  probability_accuracy: float       # out-of-sample, of the issue model
  seconds: Dict[str, float]         # per step, in order


class _Steps:
  """Logs each step as it starts and ends, and keeps its wall time."""

  def __init__(self):
    self.seconds: Dict[str, float] = {}

  @contextlib.contextmanager
  def __call__(self, name: str):
    logging.info('explore: %s ...', name)
    start = time.monotonic()
    yield
    self.seconds[name] = time.monotonic() - start
    logging.info('explore: %s done (%.1f s)', name, self.seconds[name])


def newest_evaluation(home: str):
  """(run id, its span, EvalMetrics) of the newest evaluated run, or None."""
  cfg = configs.PipelineConfig.from_home(home)
  if not cfg.metadata_path or not os.path.exists(cfg.metadata_path):
    return None
  store = summary.open_store(cfg)
  for run_id in reversed(summary.run_ids(store)):
    s = summary.summarize(cfg, run_id, store)
    if s.metrics:
      return run_id, s.span, s.metrics
  return None


def _img(name: str, alt: str) -> str:
  return f'<img src="{name}" alt="{html.escape(alt)}">'


def run(cfg: ExploreConfig) -> Result:
  """Explores the span and writes the page and CSVs; returns the figures."""
  if cfg.sample < 10:
    raise ExploreError(f'--sample must be at least 10, got {cfg.sample}')
  home = os.path.abspath(cfg.home)
  out = cfg.output_dir or os.path.join(home, 'reports', 'explore')
  data_root = os.path.join(home, 'data')
  number, _ = data.span_dir(data_root, cfg.span)  # fail before any progress
  step = _Steps()
  with step(f'read span {number}'):
    span = data.read_span(data_root, number)
    names = [n for n in features.SPLITS if n in span.splits]
    everything = span.concat(names)
    origin = span.origin(names)
    tf.io.gfile.makedirs(out)
  sections = [f'<h1>Exploration of span {span.span}</h1><p>'
              f'{html.escape(span.span_dir)}: '
              + ', '.join(f'{n} {len(span.splits[n].labels)}' for n in names)
              + ' images.</p>']

  with step('class balance, mean and std images'):
    counts = {n: np.bincount(span.splits[n].labels,
                             minlength=features.NUM_CLASSES) for n in names}
    from_tfdv = tfdv_counts.label_counts(home, span.span)
    if from_tfdv and set(from_tfdv[0]) >= set(names):
      agree = all(np.array_equal(from_tfdv[0][n], counts[n]) for n in names)
      counts = {n: from_tfdv[0][n] for n in names}
      source = (f'From the pipeline\'s TFDV statistics of this span '
                f'(StatisticsGen, {html.escape(from_tfdv[1])}); they '
                + ('match the labels read here.' if agree else
                   '<b>differ from the labels read here</b>: the span changed '
                   'after the pipeline read it.'))
    else:
      source = ('Counted from the labels read here (no pipeline run has '
                'computed TFDV statistics of this span yet).')
    plots.class_balance(counts, os.path.join(out, 'class_balance.png'))
    plots.mean_std_grid(embedding.class_images(everything.images,
                                               everything.labels),
                        os.path.join(out, 'class_images.png'))
  sections += ['<h2>Class balance per split</h2>', f'<p>{source}</p>',
               page.balance_table(counts),
               _img('class_balance.png', 'class balance'),
               '<h2>Mean and standard-deviation image per class</h2>',
               _img('class_images.png', 'mean and std images')]

  with step(f'PCA-{embedding.PCA_COMPONENTS} of {len(everything.labels)} '
            'images'):
    x = embedding.flat(everything.images)
    pca = embedding.pca(x, seed=cfg.seed)
    plots.scatter(pca.points[:, :2], everything.labels,
                  f'PCA of all {len(x)} images', os.path.join(out, 'pca.png'),
                  f'PC1 ({100 * pca.explained[0]:.1f} % of variance)',
                  f'PC2 ({100 * pca.explained[1]:.1f} %)')
  rows = embedding.sample(len(x), cfg.sample, cfg.seed)
  with step(f't-SNE of {len(rows)} images'):
    points = embedding.tsne(pca.points[rows], cfg.seed)
    plots.scatter(points, everything.labels[rows],
                  f't-SNE of a random sample of {len(rows)} images (of the '
                  f'PCA-{pca.points.shape[1]} points)',
                  os.path.join(out, 'tsne.png'))
  sections += ['<h2>Embeddings coloured by class</h2><div class="row">',
               _img('pca.png', 'PCA'), _img('tsne.png', 't-SNE'), '</div>']

  with step('class similarity and confusion matrix'):
    similarity = embedding.class_similarity(pca.points, everything.labels)
    plots.similarity(similarity, os.path.join(out, 'class_similarity.png'))
    evaluated = newest_evaluation(home)
    if evaluated:
      report.plot_confusion(evaluated[2].confusion,
                            os.path.join(out, report.CONFUSION_PNG))
  sections += ['<h2>Class-to-class similarity</h2><p>Most similar pairs: '
               f'{html.escape(page.most_similar(similarity))}. Classes that '
               'look alike are the ones a model confuses.</p>'
               '<div class="row">',
               _img('class_similarity.png', 'class similarity')]
  if evaluated:
    sections += [_img(report.CONFUSION_PNG, 'confusion matrix'), '</div>',
                 f'<p>Confusion matrix: TFMA evaluation of run '
                 f'{html.escape(evaluated[0])} on the test split of span '
                 f'{evaluated[1]}.</p>']
  else:
    sections += ['</div><p>No evaluated run under this home yet: the '
                 'confusion matrix appears here after `fmnist run`.</p>']

  with step('near-duplicates between train and test'):
    train = span.concat(data.TRAIN_SPLITS)
    train_origin = span.origin(data.TRAIN_SPLITS)
    test = span.splits[features.TEST_SPLIT]
    n_train = len(train.labels)
    # Rows of `everything`: the train splits first, then test (SPLITS order).
    train_rows = np.array([i for i, (s, _) in enumerate(origin)
                           if s in data.TRAIN_SPLITS])
    test_rows = np.array([i for i, (s, _) in enumerate(origin)
                          if s == features.TEST_SPLIT])
    dups = duplicates_lib.find(x[train_rows], x[test_rows],
                               pca.points[train_rows], pca.points[test_rows],
                               train.images, test.images)
    dup_rows = page.duplicate_rows(dups.pairs, train_origin, test.labels,
                                   train.labels)
    page.write_csv(os.path.join(out, page.DUPLICATES_CSV),
                   page.DUPLICATE_HEADER, dup_rows)
    plots.distance_histogram(dups.nearest, dups.threshold,
                             os.path.join(out, 'duplicate_distances.png'))
  disagree = sum(r[-1] for r in dup_rows)
  sections += [
      '<h2>Near-duplicates between train and test</h2>'
      f'<p><b>{len(dups.pairs)}</b> pairs ({dups.exact_pairs} exact) involving '
      f'<b>{dups.test_images}</b> of {len(test.labels)} test images and '
      f'{n_train} train images (train + eval splits); <b>{disagree}</b> pairs '
      'carry different labels. Distance: Euclidean on pixels scaled to '
      f'[0, 1]. Threshold <b>{dups.threshold:.3f}</b>: the log distances of '
      'the bulk look normal; the cut is their median minus '
      f'{dups.z:.2f} robust standard deviations (MAD), where fewer than half a '
      'test image would fall by chance. '
      f'<a href="{page.DUPLICATES_CSV}">{page.DUPLICATES_CSV}</a></p>',
      _img('duplicate_distances.png', 'nearest distances'),
      (f'<p>First {page.MAX_PAIRS} pairs, closest first (test image left, '
       'train image right; a red label disagrees):</p>'
       if len(dups.pairs) > page.MAX_PAIRS else ''),
      page.pair_thumbnails(dup_rows, test.images, train.images, dups.pairs)]

  with step(f'likely label errors ({label_issues_lib.FOLDS}-fold '
            'out-of-sample probabilities, confident learning)'):
    issues = label_issues_lib.find(pca.points, everything.labels, cfg.seed)
    issue_rows = page.issue_rows(issues, origin, everything.labels)
    page.write_csv(os.path.join(out, page.LABEL_ISSUES_CSV),
                   page.ISSUE_HEADER, issue_rows)
  sections += [
      '<h2>Likely label errors</h2>'
      f'<p><b>{len(issues.rows)}</b> of {len(everything.labels)} images '
      'flagged by confident learning (cleanlab, '
      "filter_by='confident_learning') on out-of-sample probabilities of an "
      f'{label_issues_lib.MODEL}, '
      f'{label_issues_lib.FOLDS}-fold cross-validated (out-of-sample '
      f'accuracy {issues.accuracy:.3f}: a weaker model than the CNN, so each '
      'is a candidate to look at, not a verdict). Most likely first; the '
      'numbers are the probabilities of the given and the suggested label. '
      f'<a href="{page.LABEL_ISSUES_CSV}">{page.LABEL_ISSUES_CSV}</a></p>',
      page.issue_thumbnails(issue_rows,
                            everything.images[issues.rows[:page.MAX_ISSUES]])]

  seconds = dict(step.seconds)
  sections.append('<h2>Wall time per step</h2>' + page.table(
      ['step', 'seconds'], [[k, f'{v:.1f}'] for k, v in seconds.items()]))
  path = report.write_page(out, f'span {span.span}: exploration', sections,
                           page.STYLE)
  return Result(
      page=path, span=span.span,
      counts={n: int(len(span.splits[n].labels)) for n in names},
      exact_duplicates=dups.exact_pairs, near_duplicates=len(dups.pairs),
      duplicate_test_images=dups.test_images,
      disagreeing_duplicates=int(disagree), threshold=dups.threshold,
      label_issues=len(issues.rows), probability_accuracy=issues.accuracy,
      seconds=seconds)


def format_result(r: Result) -> str:
  """What `fmnist explore` prints at the end."""
  w = max(map(len, r.seconds), default=5)
  lines = [f'span {r.span}: ' + ', '.join(f'{n} {c}' for n, c in
                                          r.counts.items()),
           f'  near-duplicates train/test: {r.near_duplicates} pairs '
           f'({r.exact_duplicates} exact) on {r.duplicate_test_images} test '
           f'images, {r.disagreeing_duplicates} with different labels '
           f'(threshold {r.threshold:.3f})',
           f'  likely label errors: {r.label_issues} (out-of-sample accuracy '
           f'of the probability model {r.probability_accuracy:.3f})', '',
           f'  {"step":<{w}} {"seconds":>8}']
  lines += [f'  {k:<{w}} {v:8.1f}' for k, v in r.seconds.items()]
  lines.append(f'  {"total":<{w}} {sum(r.seconds.values()):8.1f}')
  return '\n'.join(lines)
