"""`fmnist automl export`: a span as Vertex AI's single-label image import."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from fmnist import cli
from models import features
from pipeline import automl
from pipeline import ingest


@pytest.fixture(scope='module')
def home(real_slice, tmp_path_factory):
  """span-1 with 300 train, 100 eval and 200 test images of the real data."""
  images, labels = real_slice
  home = str(tmp_path_factory.mktemp('automl-home'))
  parts = {'train': slice(0, 300), 'eval': slice(300, 400),
           'test': slice(400, 600)}
  for split, part in parts.items():
    ingest.write_split(images[part], labels[part],
                       os.path.join(home, 'data', 'span-1', split), 2, split)
  return home


def _lines(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_export_keeps_the_cnns_splits_and_pixels(home, real_slice, capsys):
  images, labels = real_slice
  assert cli.main(['automl', 'export', '--home', home, '--uri-prefix',
                   'gs://bucket/fmnist/automl']) == 0
  out = capsys.readouterr().out
  assert 'span 1: 300 training, 100 validation, 200 test' in out
  lines = _lines(os.path.join(home, 'automl', automl.IMPORT_FILE))
  uses = [l['dataItemResourceLabels'][automl.ML_USE_LABEL] for l in lines]
  assert uses == ['training'] * 300 + ['validation'] * 100 + ['test'] * 200
  # The official test images are AutoML's test set, in ingestion order.
  first_test = lines[400]
  assert first_test['imageGcsUri'] == (
      'gs://bucket/fmnist/automl/images/test/00000.png')
  assert first_test['classificationAnnotation']['displayName'] == (
      automl.display_name(int(labels[400])))
  png = os.path.join(home, 'automl', 'images', 'test', '00000.png')
  np.testing.assert_array_equal(np.asarray(Image.open(png)), images[400])
  names = {l['classificationAnnotation']['displayName'] for l in lines}
  assert all(n.replace('_', '').replace('-', '').isalnum() for n in names)
  with open(os.path.join(home, 'automl', automl.LABELS_FILE)) as f:
    assert json.load(f)['T-shirt_top'] == features.CLASS_NAMES[0]


@pytest.mark.parametrize('extra, message', [
    (['--span', '7'], 'span 7 not found'),
    (['--uri-prefix', '/tmp/x'], 'expected a gs:// folder'),
    (['--limit', '0'], 'must be at least 1'),
])
def test_bad_requests_are_one_error_line(home, capsys, extra, message):
  assert cli.main(['automl', 'export', '--home', home, *extra]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and message in err and 'Traceback' not in err


def test_no_span_says_what_to_do(tmp_path, capsys):
  assert cli.main(['automl', 'export', '--home', str(tmp_path)]) == 2
  assert 'run `fmnist ingest` first' in capsys.readouterr().err
