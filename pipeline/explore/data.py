"""Read one span, as `fmnist ingest` wrote it, into arrays.

`span-N/{train,eval,test}/data-0000j-of-0000k.tfrecord.gz`: ingestion writes
record i to shard i % k, so interleaving the shards back gives the images in
the order they were ingested (for `test`, the order of the official t10k file
from `--test-offset` on). Indices in the exploration's CSV files are positions
in that order within their split.
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from models import features
from pipeline import ingest
from pipeline.errors import UserError

# The official train set is `train` + `eval` (eval is held out of it for early
# stopping); near-duplicates are looked for between it and `test`.
TRAIN_SPLITS = (features.TRAIN_SPLIT, features.EVAL_SPLIT)
_SHARD_RE = re.compile(r'-(\d+)-of-(\d+)\.tfrecord\.gz$')


class ExploreError(UserError):
  """No span to explore, or a span that is not what `fmnist ingest` writes."""


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # [N, 28, 28] uint8
  labels: np.ndarray  # [N] int64


@dataclasses.dataclass(frozen=True)
class SpanData:
  span: int
  span_dir: str
  splits: Dict[str, Split]  # every split of features.SPLITS the span has

  def concat(self, names) -> Split:
    parts = [self.splits[n] for n in names if n in self.splits]
    return Split(np.concatenate([p.images for p in parts]),
                 np.concatenate([p.labels for p in parts]))

  def origin(self, names) -> List[tuple]:
    """(split, index in split) of each row of `concat(names)`."""
    return [(n, i) for n in names if n in self.splits
            for i in range(len(self.splits[n].labels))]


def span_dir(data_root: str, span: Optional[int]) -> tuple:
  """(span, its directory): `span`, or the newest one under `data_root`."""
  spans = ingest.existing_spans(data_root)
  if not spans:
    raise ExploreError(f'no span under {data_root}: run `fmnist ingest` '
                       'first (or pass --home)')
  if span is None:
    span = spans[-1]
  elif span not in spans:
    raise ExploreError(f'no span {span} under {data_root}; spans there: '
                       f'{", ".join(map(str, spans))}')
  return span, os.path.join(data_root, f'span-{span}')


def _parse(files: List[str]) -> Split:
  spec = {features.IMAGE_KEY: tf.io.FixedLenFeature([features.NUM_PIXELS],
                                                    tf.int64),
          features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(
      4096).map(lambda s: tf.io.parse_example(s, spec))
  images, labels = [], []
  try:
    for batch in dataset:
      images.append(batch[features.IMAGE_KEY].numpy().astype(np.uint8))
      labels.append(batch[features.LABEL_KEY].numpy())
  except tf.errors.OpError as e:
    raise ExploreError(f'{files[0]}: cannot read as `tf.Example`s with '
                       f'{features.IMAGE_KEY} and {features.LABEL_KEY} '
                       f'({e.message.splitlines()[0]})') from None
  if not labels:
    return Split(np.zeros([0, features.IMAGE_SIZE, features.IMAGE_SIZE],
                          np.uint8), np.zeros([0], np.int64))
  return Split(np.concatenate(images).reshape(
      -1, features.IMAGE_SIZE, features.IMAGE_SIZE), np.concatenate(labels))


def read_split(directory: str) -> Split:
  """One split's records in ingestion order (shards interleaved back)."""
  files = sorted(tf.io.gfile.glob(os.path.join(directory, '*.tfrecord.gz')))
  if not files:
    raise ExploreError(f'{directory}: no *.tfrecord.gz files; explore reads '
                       'spans written by `fmnist ingest`')
  shards = [_parse([f]) for f in files]
  n = sum(len(s.labels) for s in shards)
  k = len(shards)
  if not all(_SHARD_RE.search(f) for f in files) or any(
      len(s.labels) != len(range(j, n, k)) for j, s in enumerate(shards)):
    return Split(np.concatenate([s.images for s in shards]),
                 np.concatenate([s.labels for s in shards]))
  images = np.empty([n, features.IMAGE_SIZE, features.IMAGE_SIZE], np.uint8)
  labels = np.empty([n], np.int64)
  for j, s in enumerate(shards):
    images[j::k], labels[j::k] = s.images, s.labels
  return Split(images, labels)


def read_span(data_root: str, span: Optional[int] = None) -> SpanData:
  number, directory = span_dir(data_root, span)
  splits = {name: read_split(os.path.join(directory, name))
            for name in features.SPLITS
            if tf.io.gfile.isdir(os.path.join(directory, name))}
  if features.TEST_SPLIT not in splits or not any(
      n in splits for n in TRAIN_SPLITS):
    raise ExploreError(f'{directory} needs a {features.TEST_SPLIT}/ and a '
                       f'{features.TRAIN_SPLIT}/ split; it has '
                       f'{", ".join(splits) or "none"}')
  labels = np.concatenate([s.labels for s in splits.values()])
  bad = np.unique(labels[(labels < 0) | (labels >= features.NUM_CLASSES)])
  if bad.size:
    raise ExploreError(f'{directory}: labels {bad[:5].tolist()} are outside 0..'
                       f'{features.NUM_CLASSES - 1}')
  return SpanData(number, directory, splits)
