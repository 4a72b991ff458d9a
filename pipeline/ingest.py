"""IDX -> TFRecord spans: the data feed the pipeline's ExampleGen reads.

Each call writes one span directory `span-N/{train,eval,test}/` of gzipped
TFRecord `tf.Example`s (`image`: 784 int64 pixels, `label`: int64). New data
arriving later becomes a new span, the way a production feed grows. The format
is checked here (magic numbers, header sizes, truncation, counts); the content
(label domain, image size, drift) is the curated schema's job in the pipeline.
"""

import dataclasses
import gzip
import logging
import os
import re
import struct
import zlib
from typing import Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from models import features
from pipeline import configs
from pipeline.errors import UserError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension

TRAIN_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz')
TEST_FILES = ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')

SPAN_DIR_RE = re.compile(r'^span-(\d+)$')


class IngestError(UserError, ValueError):
  """The source data cannot be turned into a span; the message says why."""


@dataclasses.dataclass(frozen=True)
class IngestConfig:
  source_dir: str
  output_dir: str
  span: Optional[int] = None        # None: the next span after the existing ones
  train_limit: Optional[int] = None  # take a slice of the official train set
  train_offset: int = 0
  test_limit: Optional[int] = None
  test_offset: int = 0
  eval_fraction: float = configs.DEFAULT_EVAL_FRACTION
  shards: int = 4
  seed: int = 42


_GZIP_MAGIC = b'\x1f\x8b'


def _read_file(path: str) -> bytes:
  """The file's IDX bytes, gunzipped if the file is gzip (by content, not name)."""
  if not tf.io.gfile.exists(path):
    raise IngestError(f'{path}: file not found')
  with tf.io.gfile.GFile(path, 'rb') as f:
    raw = f.read()
  if raw[:2] == _GZIP_MAGIC:
    try:
      raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
      raise IngestError(f'{path}: not a valid gzip file ({e})') from None
  return raw


def _name_variants(name: str) -> List[str]:
  """The names one IDX file is distributed under: gzipped or not, and with
  `-idx3-` or `.idx3-` (the original site vs. copies such as Kaggle's)."""
  stem = name[:-len('.gz')] if name.endswith('.gz') else name
  stems = [stem] + [v for v in (stem.replace('-idx', '.idx'),) if v != stem]
  return [n for st in stems for n in (st + '.gz', st)]


def find_idx_file(source_dir: str, name: str) -> str:
  """The path of `name` in `source_dir`, compressed or not.

  Many copies of Fashion-MNIST are kept uncompressed; the error lists every
  name that was looked for, so a user sees what to rename.
  """
  candidates = [os.path.join(source_dir, n) for n in _name_variants(name)]
  for path in candidates:
    if tf.io.gfile.exists(path):
      return path
  raise IngestError(f'{os.path.join(source_dir, name)}: file not found; '
                    f'looked for {", ".join(os.path.basename(c) for c in candidates)} '
                    f'in {source_dir}')


def read_idx_images(path: str) -> np.ndarray:
  """Reads an IDX3 image file into a uint8 array [N, rows, cols]."""
  raw = _read_file(path)
  if len(raw) < 16:
    raise IngestError(f'{path}: {len(raw)} bytes is too short for an IDX3 '
                      'image header (16 bytes)')
  magic, n, rows, cols = struct.unpack('>IIII', raw[:16])
  if magic != IMAGES_MAGIC:
    raise IngestError(f'{path}: magic number 0x{magic:08x} is not an IDX3 '
                      f'image file (expected 0x{IMAGES_MAGIC:08x})')
  expected = 16 + n * rows * cols
  if len(raw) != expected:
    raise IngestError(f'{path}: header declares {n} images of {rows}x{cols} '
                      f'({expected} bytes) but the file has {len(raw)} bytes '
                      f'({"truncated" if len(raw) < expected else "trailing data"})')
  return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_labels(path: str) -> np.ndarray:
  """Reads an IDX1 label file into a uint8 array [N]."""
  raw = _read_file(path)
  if len(raw) < 8:
    raise IngestError(f'{path}: {len(raw)} bytes is too short for an IDX1 '
                      'label header (8 bytes)')
  magic, n = struct.unpack('>II', raw[:8])
  if magic != LABELS_MAGIC:
    raise IngestError(f'{path}: magic number 0x{magic:08x} is not an IDX1 '
                      f'label file (expected 0x{LABELS_MAGIC:08x})')
  if len(raw) != 8 + n:
    raise IngestError(f'{path}: header declares {n} labels ({8 + n} bytes) but '
                      f'the file has {len(raw)} bytes')
  return np.frombuffer(raw, np.uint8, offset=8)


def read_idx_pair(source_dir: str, files: Tuple[str, str],
                  offset: int = 0, limit: Optional[int] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
  """Reads matching image and label files, optionally a slice of them."""
  images_path, labels_path = (find_idx_file(source_dir, f) for f in files)
  images = read_idx_images(images_path)
  labels = read_idx_labels(labels_path)
  if len(images) != len(labels):
    raise IngestError(f'{images_path} has {len(images)} images but '
                      f'{labels_path} has {len(labels)} labels')
  end = None if limit is None else offset + limit
  return images[offset:end], labels[offset:end]


def to_example(image: np.ndarray, label: int) -> bytes:
  """One raw `tf.Example`: the pixels exactly as in the IDX file, and the label."""
  return tf.train.Example(features=tf.train.Features(feature={
      features.IMAGE_KEY: tf.train.Feature(
          int64_list=tf.train.Int64List(value=image.reshape(-1).tolist())),
      features.LABEL_KEY: tf.train.Feature(
          int64_list=tf.train.Int64List(value=[int(label)])),
  })).SerializeToString()


def existing_spans(output_dir: str) -> list:
  if not tf.io.gfile.isdir(output_dir):
    return []
  spans = []
  for name in tf.io.gfile.listdir(output_dir):
    m = SPAN_DIR_RE.match(name.rstrip('/'))
    if m:
      spans.append(int(m.group(1)))
  return sorted(spans)


def write_split(images: np.ndarray, labels: np.ndarray, split_dir: str,
                shards: int, progress_label: str) -> None:
  """Writes gzipped TFRecord shards, logging progress every ~10 %."""
  tf.io.gfile.makedirs(split_dir)
  n = len(images)
  shards = max(1, min(shards, n))
  writers = [tf.io.TFRecordWriter(
      os.path.join(split_dir, f'data-{i:05d}-of-{shards:05d}.tfrecord.gz'),
      options='GZIP') for i in range(shards)]
  step = max(1, n // 10)
  try:
    for i, (image, label) in enumerate(zip(images, labels)):
      writers[i % shards].write(to_example(image, label))
      if (i + 1) % step == 0 or i + 1 == n:
        logging.info('%s: %d/%d examples (%d%%)', progress_label, i + 1, n,
                     100 * (i + 1) // n)
  finally:
    for w in writers:
      w.close()


def holdout(n: int, eval_fraction: float, seed: int):
  """(train, eval) indices: a seeded permutation holds out the eval share."""
  order = np.random.default_rng(seed).permutation(n)
  n_eval = max(1, int(round(n * eval_fraction)))
  return np.sort(order[n_eval:]), np.sort(order[:n_eval])


def _check(cfg: IngestConfig) -> None:
  """Slices that mean something: a negative limit or offset would silently
  select another part of the data (Python slicing counts from the end)."""
  for name in ('train_limit', 'test_limit'):
    value = getattr(cfg, name)
    if value is not None and value < 1:
      raise IngestError(f'{name.replace("_", "-")} must be at least 1, got '
                        f'{value}')
  for name in ('train_offset', 'test_offset'):
    if getattr(cfg, name) < 0:
      raise IngestError(f'{name.replace("_", "-")} must be 0 or more, got '
                        f'{getattr(cfg, name)}')
  if cfg.span is not None and cfg.span < 0:
    raise IngestError(f'span must be 0 or more, got {cfg.span}')
  if not 0 < cfg.eval_fraction < 1:
    raise IngestError(f'eval fraction must be in (0, 1), got {cfg.eval_fraction}')


def ingest(cfg: IngestConfig) -> str:
  """Writes one span from the IDX files; returns its directory.

  The span is written under a temporary name and renamed at the end, so
  ExampleGen never picks up a half-written span.
  """
  _check(cfg)
  train_x, train_y = read_idx_pair(cfg.source_dir, TRAIN_FILES,
                                   cfg.train_offset, cfg.train_limit)
  test_x, test_y = read_idx_pair(cfg.source_dir, TEST_FILES,
                                 cfg.test_offset, cfg.test_limit)
  if len(train_x) == 0 or len(test_x) == 0:
    raise IngestError(f'nothing to ingest: {len(train_x)} train and '
                      f'{len(test_x)} test images selected')

  spans = existing_spans(cfg.output_dir)
  span = cfg.span if cfg.span is not None else (spans[-1] + 1 if spans else 1)
  if span in spans:
    raise IngestError(f'span {span} already exists in {cfg.output_dir}; spans '
                      'are immutable, ingest new data as a new span')
  final_dir = os.path.join(cfg.output_dir, f'span-{span}')
  tmp_dir = os.path.join(cfg.output_dir, f'.tmp-span-{span}')
  if tf.io.gfile.exists(tmp_dir):
    tf.io.gfile.rmtree(tmp_dir)

  train_idx, eval_idx = holdout(len(train_x), cfg.eval_fraction, cfg.seed)
  parts = {
      features.TRAIN_SPLIT: (train_x[train_idx], train_y[train_idx]),
      features.EVAL_SPLIT: (train_x[eval_idx], train_y[eval_idx]),
      features.TEST_SPLIT: (test_x, test_y),
  }
  for split, (x, y) in parts.items():
    write_split(x, y, os.path.join(tmp_dir, split), cfg.shards,
                f'span-{span}/{split}')
  tf.io.gfile.rename(tmp_dir, final_dir)
  logging.info('Wrote span %d to %s (%s)', span, final_dir,
               ', '.join(f'{s}: {len(p[0])}' for s, p in parts.items()))
  return final_dir


_SHARD_RE = re.compile(r'-(\d+)-of-(\d+)\.tfrecord\.gz$')


def _parse_records(files: List[str]) -> Tuple[np.ndarray, np.ndarray]:
  spec = features.raw_feature_spec()
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(
      4096).map(lambda s: tf.io.parse_example(s, spec))
  images, labels = [], []
  try:
    for batch in dataset:
      images.append(batch[features.IMAGE_KEY].numpy().astype(np.uint8))
      labels.append(batch[features.LABEL_KEY].numpy())
  except tf.errors.OpError as e:
    raise IngestError(f'{files[0]}: cannot read as `tf.Example`s with '
                      f'{features.IMAGE_KEY} and {features.LABEL_KEY} '
                      f'({e.message.splitlines()[0]})') from None
  if not labels:
    return (np.zeros([0, features.IMAGE_SIZE, features.IMAGE_SIZE], np.uint8),
            np.zeros([0], np.int64))
  return (np.concatenate(images).reshape(
      -1, features.IMAGE_SIZE, features.IMAGE_SIZE), np.concatenate(labels))


def read_span_split(directory: str) -> Tuple[np.ndarray, np.ndarray]:
  """(images [N, 28, 28] uint8, labels [N]) of one split of a span, in the
  order they were ingested: record i went to shard i % k, so interleaving the
  shards gives it back (files named otherwise are read in name order)."""
  files = sorted(tf.io.gfile.glob(os.path.join(directory, '*.tfrecord.gz')))
  if not files:
    raise IngestError(f'{directory}: no *.tfrecord.gz files; expected a span '
                      'split written by `fmnist ingest`')
  shards = [_parse_records([f]) for f in files]
  n = sum(len(labels) for _, labels in shards)
  k = len(shards)
  if not all(_SHARD_RE.search(f) for f in files) or any(
      len(labels) != len(range(j, n, k)) for j, (_, labels) in
      enumerate(shards)):
    return (np.concatenate([images for images, _ in shards]),
            np.concatenate([labels for _, labels in shards]))
  images = np.empty([n, features.IMAGE_SIZE, features.IMAGE_SIZE], np.uint8)
  labels = np.empty([n], np.int64)
  for j, (shard_images, shard_labels) in enumerate(shards):
    images[j::k], labels[j::k] = shard_images, shard_labels
  return images, labels


def iter_span_examples(span_dir: str, split: str) -> Iterator[bytes]:
  """Yields the serialized examples of one split of a span (for tests/tools)."""
  pattern = os.path.join(span_dir, split, '*.tfrecord.gz')
  files = sorted(tf.io.gfile.glob(pattern))
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    yield record.numpy()
