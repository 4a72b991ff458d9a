"""`fmnist explore` on a small span of real images with planted problems.

One span (real Fashion-MNIST images) with an exact train/test duplicate, a
near duplicate carrying a different label, and a flipped train label: the
exploration must find all three, write both CSVs and the page, and refuse a
missing span with one `error:` line.
"""

import csv
import os
import re

import numpy as np
import pytest

from fmnist import cli
from models import features
from pipeline import configs
from pipeline import ingest
from pipeline.explore import duplicates

SOURCE = configs.DEFAULT_SOURCE_DIR
N_EVAL = 60
EXACT = (0, 5)     # (test index, train-split index) of the exact copy
NEAR = (1, 10)     # ... of the slightly changed copy, relabelled in test


@pytest.fixture(scope='module')
def explored(tmp_path_factory):
  home = str(tmp_path_factory.mktemp('explore'))
  x, y = ingest.read_idx_pair(SOURCE, ingest.TRAIN_FILES, limit=600)
  tx, ty = ingest.read_idx_pair(SOURCE, ingest.TEST_FILES, limit=200)
  x, y, tx, ty = x.copy(), y.astype(np.int64), tx.copy(), ty.astype(np.int64)
  train_x, train_y = x[N_EVAL:], y[N_EVAL:]
  tx[EXACT[0]], ty[EXACT[0]] = train_x[EXACT[1]], train_y[EXACT[1]]
  noise = np.random.default_rng(0).integers(-3, 4, train_x[0].shape)
  tx[NEAR[0]] = np.clip(train_x[NEAR[1]].astype(int) + noise, 0, 255)
  ty[NEAR[0]] = (train_y[NEAR[1]] + 5) % features.NUM_CLASSES
  # A trouser labelled as a bag: unmistakable for any model.
  flipped = int(np.flatnonzero(train_y == 1)[3])
  train_y[flipped] = 8
  span_dir = os.path.join(home, 'data', 'span-1')
  for split, (a, b) in {features.TRAIN_SPLIT: (train_x, train_y),
                        features.EVAL_SPLIT: (x[:N_EVAL], y[:N_EVAL]),
                        features.TEST_SPLIT: (tx, ty)}.items():
    ingest.write_split(a, b, os.path.join(span_dir, split), 3, split)
  status = cli.main(['explore', '--home', home, '--sample', '200'])
  assert status == 0
  return os.path.join(home, 'reports', 'explore'), flipped


def _rows(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_exact_and_near_duplicates_are_found_with_labels(explored):
  out, _ = explored
  rows = {(int(r['test_index']), r['train_split'], int(r['train_index'])): r
          for r in _rows(os.path.join(out, 'near_duplicates.csv'))}
  exact = rows[(EXACT[0], features.TRAIN_SPLIT, EXACT[1])]
  assert (exact['exact'], float(exact['distance']),
          exact['labels_disagree']) == ('1', 0.0, '0')
  near = rows[(NEAR[0], features.TRAIN_SPLIT, NEAR[1])]
  assert near['exact'] == '0' and 0 < float(near['distance']) < 1
  assert near['labels_disagree'] == '1'
  assert near['test_class'] != near['train_class']


def test_flipped_label_is_flagged_with_the_true_class(explored):
  out, flipped = explored
  rows = _rows(os.path.join(out, 'label_issues.csv'))
  hit = [r for r in rows if r['split'] == features.TRAIN_SPLIT and
         int(r['index']) == flipped]
  assert hit, 'the flipped trouser was not flagged'
  assert (hit[0]['given_class'], hit[0]['suggested_class']) == ('Bag',
                                                                 'Trouser')


def test_page_shows_every_picture_it_names(explored):
  out, _ = explored
  with open(os.path.join(out, 'index.html')) as f:
    page = f.read()
  pictures = re.findall(r'src="([^"]+\.png)"', page)
  assert {'class_balance.png', 'class_images.png', 'pca.png', 'tsne.png',
          'class_similarity.png', 'duplicate_distances.png'} <= set(pictures)
  assert all(os.path.exists(os.path.join(out, p)) for p in pictures)
  assert 'near_duplicates.csv' in page and 'label_issues.csv' in page
  # No pipeline run in this home: no TFDV statistics, no confusion matrix.
  assert 'Counted from the labels read here' in page
  assert 'No evaluated run under this home yet' in page
  assert page.count('data:image/png;base64') >= 3  # thumbnails


def test_threshold_leaves_a_lognormal_bulk_alone():
  rng = np.random.default_rng(1)
  bulk = np.exp(rng.normal(1.2, 0.3, 10_000))
  limit, _ = duplicates.threshold(np.concatenate([bulk, [0.2, 0.3, 0.0]]))
  assert (bulk < limit).sum() <= 3
  assert limit > 0.3


@pytest.mark.parametrize('extra, message', [
    ([], 'no span under'), (['--span', '7'], 'no span 7')])
def test_missing_span_is_one_error_line(tmp_path, capsys, extra, message):
  if extra:
    os.makedirs(tmp_path / 'data' / 'span-1' / 'test')
  assert cli.main(['explore', '--home', str(tmp_path)] + extra) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and message in err
  assert 'Traceback' not in err
