"""The real pipeline (LocalDagRunner) on a slice of the real data.

One pipeline home for the whole module, in order: a first span trains and
pushes; a rerun is fully cached; drifted and broken spans are blocked before
Transform/Trainer with the anomaly named and the pushed model untouched; a
new clean span passes the drift check and retrains.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from fmnist import cli
from models import features
from models import signatures
from models import warm_start
from pipeline import configs
from pipeline import ingest
from pipeline import pusher
from pipeline import summary

pytestmark = pytest.mark.e2e

SOURCE = configs.DEFAULT_SOURCE_DIR
# The default model (ModelConfig's measured recipe, flip TTA in the exported
# signatures) for one short epoch: the real default path, cut short. Its 14
# steps need BatchNorm's moving statistics to follow faster than Keras' 0.99
# (ModelConfig.batchnorm_momentum), or the model predicts with statistics
# still near their initial values (0.25 accuracy instead of 0.74).
# Warm starts on (off by default), so a retraining run checks that path;
# a time budget that holds the epoch, so the summary's budget line does.
PIPELINE_ARGS = ['--epochs', '1', '--model-param', 'batchnorm_momentum=0.8',
                 '--model-param', 'warm_start_epochs=1',
                 '--model-param', 'train_minutes=30',
                 '--min-accuracy', '0.3', '--max-accuracy-drop', '1.0']
TRAINING_NODES = {'Transform', 'Trainer', 'MonitoringReference', 'Evaluator',
                  'Blessing', 'Pusher'}
ALL_NODES = {'CuratedSchema', 'ImportExampleGen', 'StatisticsGen',
             'InferredSchema', 'ExampleValidator', 'PreviousAcceptedSpan',
             'DataGate', 'LatestBlessedModel', 'BaseModel'} | TRAINING_NODES


@pytest.fixture(scope='module')
def home(tmp_path_factory):
  return str(tmp_path_factory.mktemp('home'))


def _run(home, capsys):
  status = cli.main(['pipeline', 'run', '--home', home] + PIPELINE_ARGS)
  out, err = capsys.readouterr()
  return status, out, err


def _states(home):
  s = summary.summarize(configs.PipelineConfig.from_home(home))
  return {c.node_id: c.state for c in s.components}, s


def _write_span(home, span, images, labels, test_images, test_labels):
  """A span written the way ingestion writes it, from arrays we altered."""
  span_dir = os.path.join(home, 'data', f'span-{span}')
  n_eval = len(images) // 10
  for split, (x, y) in {
      features.TRAIN_SPLIT: (images[n_eval:], labels[n_eval:]),
      features.EVAL_SPLIT: (images[:n_eval], labels[:n_eval]),
      features.TEST_SPLIT: (test_images, test_labels)}.items():
    ingest.write_split(x, y, os.path.join(span_dir, split), 2, split)


def _variables(export_dir):
  """An export's saved variables, as {checkpoint key: bytes}."""
  reader = tf.train.load_checkpoint(
      os.path.join(export_dir, 'variables', 'variables'))
  return {key: reader.get_tensor(key).tobytes()
          for key in reader.get_variable_to_shape_map()
          if key.endswith('.ATTRIBUTES/VARIABLE_VALUE')}


@pytest.fixture(scope='module')
def real_parts():
  train = ingest.read_idx_pair(SOURCE, ingest.TRAIN_FILES, offset=2000,
                               limit=2000)
  test = ingest.read_idx_pair(SOURCE, ingest.TEST_FILES, limit=500)
  return train, test


def test_first_span_trains_evaluates_and_pushes(home, capsys):
  assert cli.main(['ingest', '--home', home, '--train-limit', '2000',
                   '--test-limit', '500',
                   '--eval-fraction', '0.1']) == 0
  status, out, _ = _run(home, capsys)
  assert status == 0
  states, s = _states(home)
  assert set(states) == ALL_NODES
  assert all(state == 'ran' for state in states.values()), states
  assert s.span == 1 and s.blessed
  assert s.metrics.overall['example_count'] == 500
  assert 0.3 <= s.metrics.overall['accuracy'] <= 1.0
  assert 0.0 <= s.metrics.overall['ece'] <= 1.0
  assert len(s.metrics.per_class) == features.NUM_CLASSES
  assert 'test accuracy' in out and 'pushed to' in out
  # Its times mean little without the CPU and oneDNN state next to them.
  machine = [l for l in out.splitlines() if l.startswith('machine: ')]
  assert len(machine) == 1 and ' cores, oneDNN o' in machine[0]
  # The default fits its served temperature on the span's eval split.
  assert s.temperature['examples'] == 200
  assert s.temperature['nll_after'] <= s.temperature['nll_before']
  assert 'served temperature' in out
  # Nothing to start from on the first span; the export records its recipe
  # for the next span's warm start.
  assert not s.warm_start['warm_started']
  assert 'trained from scratch: no blessed model' in out
  assert s.time_budget['trained_epochs'] == 1
  assert 'a 30-minute training budget: 1 of 1 epochs fit' in out
  assert os.path.exists(os.path.join(s.pushed_to, warm_start.CONFIG_FILE))

  base = os.path.join(home, 'serving_model')
  versions = pusher.pushed_versions(base)
  assert len(versions) == 1 and s.pushed_to == os.path.join(base, str(versions[0]))
  model = tf.saved_model.load(s.pushed_to)
  images, labels = ingest.read_idx_pair(SOURCE, ingest.TEST_FILES, limit=500)
  out = model.signatures['serving_default'](
      pixels=tf.constant(images.astype(np.float32)))
  predicted = out[signatures.CLASS_IDS].numpy()
  # The serving signature agrees with what TFMA measured on the same images.
  assert np.mean(predicted == labels) == pytest.approx(
      s.metrics.overall['accuracy'], abs=1e-6)


def test_rerun_with_unchanged_inputs_is_cached(home, capsys):
  base = os.path.join(home, 'serving_model')
  before = pusher.pushed_versions(base)
  resolvers = {'LatestBlessedModel', 'PreviousAcceptedSpan', 'BaseModel'}
  # The first rerun re-evaluates: the baseline changed (run 1's model is now
  # the latest blessed one). The same model is not pushed again.
  assert _run(home, capsys)[0] == 0
  states, _ = _states(home)
  assert {n for n, s in states.items() if s == 'ran'} - resolvers == {
      'Evaluator', 'Blessing', 'Pusher'}
  assert pusher.pushed_versions(base) == before
  # The model against itself (its own baseline) on the same images: blessed,
  # and the summary says by which test and numbers.
  _, s = _states(home)
  assert s.blessed
  assert s.blessing_reason.startswith('BLESSED')
  assert ('McNemar exact p=1 on 500 paired images (0 only the candidate got '
          'right, 0 only the baseline)') in s.blessing_reason
  # Now nothing changed at all: every component is cached.
  assert _run(home, capsys)[0] == 0
  states, _ = _states(home)
  assert {n: s for n, s in states.items() if n not in resolvers} == {
      n: 'cached' for n in ALL_NODES - resolvers}
  assert pusher.pushed_versions(base) == before


def _assert_blocked(home, capsys, span, *named):
  base = os.path.join(home, 'serving_model')
  before = {v: os.path.getmtime(os.path.join(base, str(v)))
            for v in pusher.pushed_versions(base)}
  status, _, err = _run(home, capsys)
  assert status == 2
  assert f'span {span} was blocked before training' in err
  for text in named:
    assert text in err
  assert 'Traceback' not in err
  states, _ = _states(home)
  assert states['DataGate'] == 'FAILED'
  assert not TRAINING_NODES & set(states)
  after = {v: os.path.getmtime(os.path.join(base, str(v)))
           for v in pusher.pushed_versions(base)}
  assert after == before


def test_drifted_span_is_blocked_before_training(home, capsys, real_parts):
  (images, labels), (test_images, test_labels) = real_parts
  # Inverted images: dark garments on a white background.
  _write_span(home, 2, 255 - images, labels, 255 - test_images, test_labels)
  _assert_blocked(home, capsys, 2, "feature 'image'", 'Jensen-Shannon')


def test_span_with_bad_labels_and_sizes_is_blocked(home, capsys, real_parts):
  (images, labels), (test_images, test_labels) = real_parts
  bad_labels = labels.copy()
  bad_labels[::50] = 11
  _write_span(home, 3, images, bad_labels, test_images, test_labels)
  _assert_blocked(home, capsys, 3, "feature 'label'")

  big = np.zeros((60, 32, 32), np.uint8)
  _write_span(home, 4, big, labels[:60], big[:10], test_labels[:10])
  _assert_blocked(home, capsys, 4, "feature 'image'")


def test_new_clean_span_passes_drift_and_retrains(home, capsys, real_parts):
  (images, labels), (test_images, test_labels) = real_parts
  # Baseline is span 1, the last accepted one, not the blocked spans.
  _write_span(home, 5, images, labels, test_images, test_labels)
  status, out, err = _run(home, capsys)
  assert status == 0, err
  states, s = _states(home)
  assert s.span == 5
  assert states['DataGate'] == 'ran' and states['Trainer'] == 'ran'
  assert states['CuratedSchema'] == 'cached'
  # A retraining run of the same recipe starts from span 1's blessed model
  # (the blocked spans 2-4 trained nothing).
  assert s.warm_start['warm_started'], s.warm_start
  served = os.path.join(home, 'serving_model')
  first = os.path.join(served, str(pusher.pushed_versions(served)[0]))
  assert _variables(s.warm_start['base_model']) == _variables(first)
  assert s.warm_start['epochs'] == 1
  assert 'warm-started from' in out


def test_report_shows_every_run_side_by_side(home, capsys):
  assert cli.main(['report', '--home', home]) == 0
  index = capsys.readouterr().out.strip()
  assert index == os.path.join(home, 'reports', 'index.html')
  with open(index) as f:
    page = f.read()
  store = summary.open_store(configs.PipelineConfig.from_home(home))
  for run_id in summary.run_ids(store):
    assert run_id in page
  assert page.count('failed at DataGate') == 3
  assert 'Curated vs. inferred schema' in page
  assert 'Served temperature' in page
  assert 'Warm-started from' in page  # the newest training run: span 5's
  for name in ('confusion_matrix.png', 'training_curves.png',
               'statistics.html'):
    assert os.path.getsize(os.path.join(home, 'reports', name)) > 1000


def test_monitor_finds_the_served_models_training_statistics(home, capsys):
  """`fmnist monitor` on logged traffic, its baseline from the real MLMD."""
  import json
  import time
  from serving import request_log
  base = os.path.join(home, 'serving_model')
  version = str(pusher.pushed_versions(base)[-1])
  images, _ = ingest.read_idx_pair(SOURCE, ingest.TEST_FILES, offset=500,
                                   limit=600)
  # Logged as the proxy logs them: the served model's own answers, which the
  # monitor's model-output tests compare with the same model on held-out data.
  pixels = images.reshape(len(images), -1).astype(np.float32)
  served = tf.saved_model.load(os.path.join(base, version)).signatures[
      'serving_default'](pixels=tf.constant(pixels))
  probabilities = served[signatures.PROBABILITIES].numpy()
  class_ids = probabilities.argmax(axis=1)
  sink = request_log.JsonlSink(os.path.join(home, 'request_logs'), 1 << 30,
                               3600)
  sink.write(sink.rows(request_log.Served(
      timestamp=time.time(), request_id='0' * 20, route='friendly',
      model_name='fmnist', model_version=version, pixels=pixels,
      probabilities=probabilities, class_ids=class_ids,
      class_names=[features.CLASS_NAMES[c] for c in class_ids])))
  sink.close()
  cfg = configs.PipelineConfig.from_home(home)
  store = summary.open_store(cfg)
  # The span of the run that pushed the served version (cached reruns
  # report the same push).
  (span,) = {s.span for s in (summary.summarize(cfg, r, store)
                              for r in summary.run_ids(store))
             if (s.pushed_to or '').endswith(os.sep + version)}
  # This one-epoch model's class shares are off the training labels, which
  # TFDV's skew check may rightly flag (exit 3); the statistical tests must
  # not: natural test images through the model the reference was made with.
  assert cli.main(['monitor', '--home', home]) in (0, 3)
  out = capsys.readouterr().out
  assert 'HEALTHY' in out.splitlines()[0] and '600 served instances' in out
  assert 'tested:' in out
  assert not [l for l in out.splitlines() if '[test]' in l and 'ALARM' in l]
  assert (f'train statistics of span {span}, which the served model '
          f'{version} was trained on (MLMD lineage)') in out
  (stamp,) = [d for d in os.listdir(os.path.join(home, 'monitoring'))
              if d[0].isdigit()]
  with open(os.path.join(home, 'monitoring', stamp, 'summary.json')) as f:
    written = json.load(f)
  assert written['baseline']['span'] == span
  # The reference is the pipeline's MonitoringReference of this model, found
  # through lineage, not computed by the monitor.
  assert written['tests']['reference'].startswith(
      f'model {version} on ') and written['tests']['reference'].endswith(
          f'of span {span}, which the model did not train on, predicted in '
          'the pipeline run (the pipeline\'s MonitoringReference, found '
          'through MLMD lineage)'), written['tests']['reference']
  assert written['tests']['skipped'] == []
  assert not os.path.exists(os.path.join(home, 'monitoring', 'reference'))


def test_automl_compare_takes_the_cnns_side_from_tfma(home):
  """`fmnist automl compare`'s CNN column: the newest evaluated run's TFMA
  metrics on the official test images (the AutoML side: tests/vertex)."""
  from pipeline import automl
  cfg = configs.PipelineConfig.from_home(home)
  cnn = automl.cnn_side(cfg)
  newest = [summary.summarize(cfg, r) for r in summary.run_ids(
      summary.open_store(cfg))]
  evaluated = [s for s in newest if s.metrics is not None][-1]
  assert cnn.accuracy == evaluated.metrics.overall['accuracy']
  assert cnn.test_images == 500 and set(cnn.per_class) == set(range(10))


def test_compare_two_real_evaluated_runs(home, capsys):
  """The newest run's candidate against its baseline, on the same images."""
  cfg = configs.PipelineConfig.from_home(home)
  store = summary.open_store(cfg)
  newest = [summary.summarize(cfg, r, store) for r in summary.run_ids(store)
            if summary.summarize(cfg, r, store).metrics][-1]
  assert cli.main(['compare', '--home', home, '--resamples', '500']) == 0
  out = capsys.readouterr().out
  assert out.startswith(f'A: baseline of run {newest.run_id}\nB: run '
                        f'{newest.run_id}')
  # B's accuracy from the recomputed predictions is TFMA's.
  line = next(l for l in out.splitlines() if l.strip().startswith('accuracy '))
  assert float(line.split()[2]) == pytest.approx(
      newest.metrics.overall['accuracy'], abs=1e-4)
  assert 'McNemar p' in out and 'Holm p' in out
  for name in features.CLASS_NAMES:
    assert name in out
  page = out.strip().splitlines()[-1]
  assert page == os.path.join(home, 'reports', 'compare', 'index.html')
  with open(page) as f:
    text = f.read()
  assert text.count('data:image/png;base64,') >= 2
  assert 'Confusion-matrix difference' in text and 'prediction changed' in text

  assert cli.main(['compare', 'no-such-run', 'nor-this', '--home', home]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: 'no-such-run' is neither") and 'Traceback' not in err


def test_clearly_worse_model_is_blocked_with_the_reason(home, capsys):
  """An untrained candidate (learning rate 0) against the blessed baseline:
  above the (zero) value bar, but the default policy (worse by more than 1
  point and McNemar p < 0.05) blocks it; nothing is pushed."""
  base = os.path.join(home, 'serving_model')
  before = pusher.pushed_versions(base)
  status = cli.main(['pipeline', 'run', '--home', home, '--epochs', '1',
                     '--model-param', 'learning_rate=0.0', '--min-accuracy',
                     '0.0'])
  out = capsys.readouterr().out
  assert status == 0
  _, s = _states(home)
  assert s.blessed is False and s.pushed_to is None
  assert s.blessing_reason.startswith('NOT blessed')
  assert 'WORSE than the baseline' in s.blessing_reason
  assert 'McNemar exact p=' in s.blessing_reason
  assert s.blessing_reason in out
  assert pusher.pushed_versions(base) == before


def test_notebook_snippet_in_docs_opens_the_runs_in_tfma_views(home):
  """docs/compare.md's snippet runs as written against the real runs."""
  import re
  with open(os.path.join(configs.REPO_ROOT, 'docs', 'compare.md')) as f:
    (snippet,) = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  scope = {'HOME': home}
  exec(compile(snippet, 'docs/compare.md', 'exec'), scope)  # pylint: disable=exec-used
  assert len(scope['view'].data) == features.NUM_CLASSES  # one row per label
  assert len(scope['baseline_view'].data) == features.NUM_CLASSES
  assert len(scope['series'].data) == len(scope['uris']) >= 2


def test_explore_puts_the_newest_confusion_matrix_next_to_similarity(home,
                                                                     capsys):
  """`fmnist explore` finds the newest TFMA evaluation and the span's TFDV
  statistics in this home's MLMD."""
  out_dir = os.path.join(home, 'reports', 'explore')
  assert cli.main(['explore', '--home', home, '--span', '1', '--sample',
                   '300']) == 0
  assert 'near-duplicates train/test' in capsys.readouterr().out
  with open(os.path.join(out_dir, 'index.html')) as f:
    page = f.read()
  assert 'confusion_matrix.png' in page and 'TFMA evaluation of run' in page
  # Class balance from the pipeline's own StatisticsGen output of span 1.
  assert "TFDV statistics of this span" in page
  assert 'match the labels read here' in page
  assert os.path.exists(os.path.join(out_dir, 'confusion_matrix.png'))
