"""A span as a Vertex AI image dataset: the AutoML baseline's input.

The original project trained an AutoML Vision classifier as the baseline for
the custom CNN. `export` writes a span's images as PNG files plus the import
file Vertex AI documents for single-label image classification (JSON Lines,
schema `image_classification_single_label_io_format_1.0.0.yaml`): one line
per image with `imageGcsUri`, `classificationAnnotation.displayName` and the
`aiplatform.googleapis.com/ml_use` data-item label. `ml_use` keeps the CNN's
splits: the span's `train` → training, `eval` → validation and the official
test set → test, so AutoML's evaluation and TFMA's are on the same images.

Written locally or to gs:// (through tf.io.gfile). When writing locally for
a later upload, `uri_prefix` is the gs:// folder the files will live in, so
the import file already names their final URIs.
"""

import dataclasses
import io
import json
import os
import re
from typing import Callable, Dict, Optional

import numpy as np

from models import features
from pipeline import ingest
from pipeline.errors import UserError

# Vertex AI's import schema for single-label image classification.
IMPORT_SCHEMA_URI = ('gs://google-cloud-aiplatform/schema/dataset/ioformat/'
                     'image_classification_single_label_io_format_1.0.0.yaml')
ML_USE_LABEL = 'aiplatform.googleapis.com/ml_use'
ML_USE = {features.TRAIN_SPLIT: 'training', features.EVAL_SPLIT: 'validation',
          features.TEST_SPLIT: 'test'}
IMPORT_FILE = 'import.jsonl'
LABELS_FILE = 'labels.json'


class AutoMLError(UserError):
  """A span or destination the export cannot use."""


def display_name(class_id: int) -> str:
  """The class name as an AutoML label: letters, digits, '_' and '-' only
  ('T-shirt/top' -> 'T-shirt_top', 'Ankle boot' -> 'Ankle_boot')."""
  return re.sub(r'[^A-Za-z0-9_-]', '_', features.CLASS_NAMES[class_id])


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  data_root: str                    # HOME/data: where `fmnist ingest` wrote spans
  output_dir: str                   # local or gs://
  span: Optional[int] = None        # default: the newest
  uri_prefix: Optional[str] = None  # gs:// where output_dir will be uploaded
  limit: Optional[int] = None       # images per split (a smoke test)

  def __post_init__(self):
    if self.uri_prefix and not self.uri_prefix.startswith('gs://'):
      raise AutoMLError(f'--uri-prefix {self.uri_prefix!r}: expected a gs:// '
                        'folder (where the exported files will be uploaded)')
    if self.limit is not None and self.limit < 1:
      raise AutoMLError(f'--limit {self.limit}: must be at least 1')


@dataclasses.dataclass(frozen=True)
class Exported:
  import_file: str
  span: int
  counts: Dict[str, int]            # ml_use -> images
  uri_prefix: str                   # what imageGcsUri starts with


def _png(image: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(image, mode='L').save(buffer, format='PNG')
  return buffer.getvalue()


def export(cfg: ExportConfig,
           progress: Callable[[str], None] = lambda line: None) -> Exported:
  """Writes PNGs and the import file; returns where and how many."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spans = ingest.existing_spans(cfg.data_root)
  if not spans:
    raise AutoMLError(f'no span under {cfg.data_root}; run `fmnist ingest` '
                      'first')
  span = cfg.span if cfg.span is not None else spans[-1]
  if span not in spans:
    raise AutoMLError(f'span {span} not found under {cfg.data_root} '
                      f'(spans: {", ".join(map(str, spans))})')
  prefix = (cfg.uri_prefix or cfg.output_dir).rstrip('/')
  lines, counts = [], {}
  for split, ml_use in ML_USE.items():
    images, labels = ingest.read_span_split(
        os.path.join(cfg.data_root, f'span-{span}', split))
    if cfg.limit is not None:
      images, labels = images[:cfg.limit], labels[:cfg.limit]
    folder = os.path.join(cfg.output_dir, 'images', split)
    tf.io.gfile.makedirs(folder)
    for i, (image, label) in enumerate(zip(images, labels)):
      name = f'{split}/{i:05d}.png'
      with tf.io.gfile.GFile(os.path.join(cfg.output_dir, 'images', name),
                             'wb') as f:
        f.write(_png(image))
      lines.append(json.dumps({
          'imageGcsUri': f'{prefix}/images/{name}',
          'classificationAnnotation': {'displayName': display_name(int(label))},
          'dataItemResourceLabels': {ML_USE_LABEL: ml_use}}))
      if (i + 1) % 10_000 == 0:
        progress(f'{split}: {i + 1}/{len(images)} images')
    counts[ml_use] = len(images)
    progress(f'{split} -> {ml_use}: {len(images)} images')
  import_file = os.path.join(cfg.output_dir, IMPORT_FILE)
  with tf.io.gfile.GFile(import_file, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with tf.io.gfile.GFile(os.path.join(cfg.output_dir, LABELS_FILE), 'w') as f:
    json.dump({display_name(c): features.CLASS_NAMES[c]
               for c in range(features.NUM_CLASSES)}, f, indent=1)
  return Exported(import_file=import_file, span=span, counts=counts,
                  uri_prefix=prefix)
