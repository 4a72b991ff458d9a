"""IDX parsing and span writing: the format checks a user relies on."""

import argparse
import gzip
import os
import struct

import numpy as np
import pytest

from fmnist import options
from models import features
from pipeline import ingest


def _write_idx(directory, files, images, labels, image_magic=ingest.IMAGES_MAGIC,
               label_magic=ingest.LABELS_MAGIC, truncate=0, gz=True):
  os.makedirs(directory, exist_ok=True)
  n, rows, cols = images.shape
  img = struct.pack('>IIII', image_magic, n, rows, cols) + images.tobytes()
  lbl = struct.pack('>II', label_magic, len(labels)) + labels.tobytes()
  if truncate:
    img = img[:-truncate]
  for name, data in zip(files, (img, lbl)):
    with open(os.path.join(directory, name), 'wb') as f:
      f.write(gzip.compress(data) if gz else data)


def _dataset(directory, n_train=50, n_test=20, size=28, label_max=9, **kw):
  rng = np.random.default_rng(0)
  for files, n in ((ingest.TRAIN_FILES, n_train), (ingest.TEST_FILES, n_test)):
    _write_idx(directory, files,
               rng.integers(0, 256, (n, size, size), dtype=np.uint8),
               rng.integers(0, label_max + 1, n, dtype=np.uint8), **kw)
  return directory


def test_reads_the_real_dataset_headers(real_slice):
  images, labels = real_slice
  assert images.shape == (600, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (600,) and set(labels) <= set(range(10))


def test_writes_a_span_with_three_splits_and_exact_pixels(tmp_path):
  src = _dataset(str(tmp_path / 'src'))
  span_dir = ingest.ingest(ingest.IngestConfig(
      source_dir=src, output_dir=str(tmp_path / 'data'), eval_fraction=0.2,
      shards=2))
  assert os.path.basename(span_dir) == 'span-1'
  counts = {split: len(list(ingest.iter_span_examples(span_dir, split)))
            for split in features.SPLITS}
  assert counts == {'train': 40, 'eval': 10, 'test': 20}

  import tensorflow as tf
  first = tf.train.Example.FromString(
      next(ingest.iter_span_examples(span_dir, 'test')))
  pixels = first.features.feature[features.IMAGE_KEY].int64_list.value
  assert len(pixels) == features.NUM_PIXELS
  test_images, _ = ingest.read_idx_pair(src, ingest.TEST_FILES)
  # Shards are written round-robin, so shard 0 starts with image 0.
  assert list(pixels) == test_images[0].reshape(-1).tolist()


def test_next_span_number_and_immutable_spans(tmp_path):
  src = _dataset(str(tmp_path / 'src'))
  out = str(tmp_path / 'data')
  cfg = ingest.IngestConfig(source_dir=src, output_dir=out)
  ingest.ingest(cfg)
  assert os.path.basename(ingest.ingest(cfg)) == 'span-2'
  assert ingest.existing_spans(out) == [1, 2]
  with pytest.raises(ingest.IngestError, match='span 2 already exists'):
    ingest.ingest(ingest.IngestConfig(source_dir=src, output_dir=out, span=2))


def test_slices_by_offset_and_limit(tmp_path):
  src = _dataset(str(tmp_path / 'src'), n_train=30)
  images, _ = ingest.read_idx_pair(src, ingest.TRAIN_FILES)
  part, part_labels = ingest.read_idx_pair(src, ingest.TRAIN_FILES, offset=10,
                                           limit=5)
  assert np.array_equal(part, images[10:15]) and len(part_labels) == 5


@pytest.mark.parametrize('kwargs, message', [
    (dict(image_magic=0x0801), 'is not an IDX3 image file'),
    (dict(label_magic=0x0803), 'is not an IDX1 label file'),
    (dict(truncate=100), 'truncated'),
])
def test_malformed_idx_files_are_named(tmp_path, kwargs, message):
  src = _dataset(str(tmp_path / 'src'), **kwargs)
  with pytest.raises(ingest.IngestError, match=message):
    ingest.ingest(ingest.IngestConfig(source_dir=src,
                                      output_dir=str(tmp_path / 'data')))
  assert ingest.existing_spans(str(tmp_path / 'data')) == []


def test_corrupt_gzip_and_missing_file(tmp_path):
  src = _dataset(str(tmp_path / 'src'))
  path = os.path.join(src, ingest.TRAIN_FILES[0])
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(ingest.IngestError, match='not a valid gzip file'):
    ingest.read_idx_images(path)
  with pytest.raises(ingest.IngestError, match='file not found'):
    ingest.read_idx_images(os.path.join(src, 'nope.gz'))


def test_image_and_label_counts_must_match(tmp_path):
  src = str(tmp_path / 'src')
  _write_idx(src, ingest.TRAIN_FILES, np.zeros((5, 28, 28), np.uint8),
             np.zeros(4, np.uint8))
  with pytest.raises(ingest.IngestError, match='has 5 images but .* has 4 labels'):
    ingest.read_idx_pair(src, ingest.TRAIN_FILES)


def test_empty_selection_writes_nothing(tmp_path):
  src = _dataset(str(tmp_path / 'src'))
  out = str(tmp_path / 'data')
  with pytest.raises(ingest.IngestError, match='nothing to ingest'):
    ingest.ingest(ingest.IngestConfig(source_dir=src, output_dir=out,
                                      train_offset=1000))
  assert not os.path.exists(out) or ingest.existing_spans(out) == []


@pytest.mark.parametrize('kwargs,message', [
    ({'train_limit': -5}, 'train-limit must be at least 1, got -5'),
    ({'test_limit': 0}, 'test-limit must be at least 1'),
    ({'train_offset': -100}, 'train-offset must be 0 or more'),
    ({'span': -1}, 'span must be 0 or more'),
    ({'eval_fraction': 1.5}, r'eval fraction must be in \(0, 1\)'),
])
def test_meaningless_slices_are_refused_before_reading(tmp_path, kwargs,
                                                       message):
  # A negative limit once ingested the whole dataset (Python slicing).
  out = str(tmp_path / 'data')
  with pytest.raises(ingest.IngestError, match=message):
    ingest.ingest(ingest.IngestConfig(source_dir=str(tmp_path / 'none'),
                                      output_dir=out, **kwargs))
  assert not os.path.exists(out)


def test_uncompressed_idx_is_read_too(tmp_path):
  src = str(tmp_path / 'src')
  _write_idx(src, ('a', 'b'), np.ones((3, 28, 28), np.uint8),
             np.array([1, 2, 3], np.uint8), gz=False)
  images, labels = ingest.read_idx_pair(src, ('a', 'b'))
  assert images.shape == (3, 28, 28) and labels.tolist() == [1, 2, 3]


@pytest.mark.parametrize('names', [
    ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),  # gunzipped
    ('train-images.idx3-ubyte', 'train-labels.idx1-ubyte'),  # Kaggle's names
    ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),  # not gzip
])
def test_uncompressed_copies_under_their_usual_names(tmp_path, names):
  src = str(tmp_path / 'src')
  _write_idx(src, names, np.full((3, 28, 28), 7, np.uint8),
             np.array([4, 5, 6], np.uint8), gz=False)
  images, labels = ingest.read_idx_pair(src, ingest.TRAIN_FILES)
  assert images.shape == (3, 28, 28) and images.max() == 7
  assert labels.tolist() == [4, 5, 6]


def test_missing_source_names_every_file_looked_for(tmp_path):
  with pytest.raises(ingest.IngestError) as e:
    ingest.read_idx_pair(str(tmp_path), ingest.TEST_FILES)
  for name in ('t10k-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte',
               't10k-images.idx3-ubyte'):
    assert name in str(e.value)


def test_a_full_span_holds_out_three_thousand_eval_images_by_default():
  """5 % of the 60,000 official train images (README "The model"); `fmnist
  ingest` and `fmnist run` default to the same share as the library."""
  cfg = ingest.IngestConfig(source_dir='', output_dir='')
  train, held = ingest.holdout(60_000, cfg.eval_fraction, cfg.seed)
  assert (len(train), len(held)) == (57_000, 3_000)
  assert not set(train) & set(held)
  parser = argparse.ArgumentParser()
  options.add_ingest_slices(parser)
  assert parser.parse_args([]).eval_fraction == cfg.eval_fraction
