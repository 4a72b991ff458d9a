"""Read one span, as `fmnist ingest` wrote it, into arrays.

`span-N/{train,eval,test}/data-0000j-of-0000k.tfrecord.gz`: ingestion writes
record i to shard i % k, so interleaving the shards back gives the images in
the order they were ingested (for `test`, the order of the official t10k file
from `--test-offset` on). Indices in the exploration's CSV files are positions
in that order within their split.
"""

import dataclasses
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from models import features
from pipeline import ingest
from pipeline.errors import UserError

# The official train set is `train` + `eval` (eval is held out of it for early
# stopping); near-duplicates are looked for between it and `test`.
TRAIN_SPLITS = (features.TRAIN_SPLIT, features.EVAL_SPLIT)


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


def read_split(directory: str) -> Split:
  """One split's records in ingestion order (`ingest.read_span_split`)."""
  try:
    return Split(*ingest.read_span_split(directory))
  except ingest.IngestError as e:
    raise ExploreError(str(e)) from None


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
