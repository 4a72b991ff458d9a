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


# ---- training (Vertex AI AutoML through the SDK) ----------------------------

# AutoML image classification (CLOUD models) accepts 8 to 800 node hours.
MIN_BUDGET_MILLI, MAX_BUDGET_MILLI = 8_000, 800_000
_FILTER = 'labels.' + ML_USE_LABEL + '={}'


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  project: str
  region: str
  import_file: str                  # gs://.../import.jsonl (`export`)
  display_name: str = 'fmnist-automl'
  budget_node_hours: float = 8.0
  wait: bool = False                # follow the training pipeline to its end
  api_endpoint: Optional[str] = None

  def __post_init__(self):
    if not self.project or not self.region:
      raise AutoMLError('--project and --region are required')
    if not self.import_file.startswith('gs://'):
      raise AutoMLError(f'--import-file {self.import_file!r}: Vertex AI reads '
                        'it from Cloud Storage; export with --output gs://... '
                        'or --uri-prefix and upload')
    milli = self.budget_milli_node_hours
    if not MIN_BUDGET_MILLI <= milli <= MAX_BUDGET_MILLI:
      raise AutoMLError(f'--budget-node-hours {self.budget_node_hours:g}: '
                        'AutoML image classification takes 8 to 800 node hours')

  @property
  def budget_milli_node_hours(self) -> int:
    return int(round(self.budget_node_hours * 1000))


@dataclasses.dataclass(frozen=True)
class Trained:
  dataset: str                      # resource names
  training_pipeline: str
  model: Optional[str]              # None until the pipeline has finished
  state: str
  error: str = ''


def _init(project: str, region: str, api_endpoint: Optional[str],
          credentials) -> None:
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  aiplatform.init(project=project, location=region, credentials=credentials,
                  api_endpoint=api_endpoint, api_transport='rest')


def train(cfg: TrainConfig, credentials=None) -> Trained:
  """Creates the ImageDataset from the import file and an AutoML image
  classification training pipeline on it; AutoML trains, tunes and tests on
  the data items' ml_use labels (the CNN's splits)."""
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  _init(cfg.project, cfg.region, cfg.api_endpoint, credentials)
  dataset = aiplatform.ImageDataset.create(
      display_name=cfg.display_name, gcs_source=[cfg.import_file],
      import_schema_uri=IMPORT_SCHEMA_URI, sync=True)
  job = aiplatform.AutoMLImageTrainingJob(
      display_name=cfg.display_name, prediction_type='classification',
      multi_label=False, model_type='CLOUD')
  try:
    model = job.run(
        dataset=dataset, model_display_name=cfg.display_name,
        training_filter_split=_FILTER.format(ML_USE[features.TRAIN_SPLIT]),
        validation_filter_split=_FILTER.format(ML_USE[features.EVAL_SPLIT]),
        test_filter_split=_FILTER.format(ML_USE[features.TEST_SPLIT]),
        budget_milli_node_hours=cfg.budget_milli_node_hours, sync=cfg.wait)
  except RuntimeError as e:  # the SDK's "Training failed with: ..."
    return Trained(dataset=dataset.resource_name,
                   training_pipeline=job.resource_name, model=None,
                   state='PIPELINE_STATE_FAILED',
                   error=' '.join(str(e).split()))
  if not cfg.wait:
    job.wait_for_resource_creation()
    return Trained(dataset=dataset.resource_name,
                   training_pipeline=job.resource_name, model=None,
                   state='submitted')
  return Trained(dataset=dataset.resource_name,
                 training_pipeline=job.resource_name,
                 model=model.resource_name if model is not None else None,
                 state=str(job.state.name))


# ---- comparison with the CNN ----------------------------------------------

@dataclasses.dataclass(frozen=True)
class Side:
  """One model's test metrics: overall accuracy, per class P/R/F1."""
  name: str
  source: str                        # where the numbers come from
  accuracy: float
  test_images: int
  per_class: Dict[int, Dict[str, float]]  # class id -> precision/recall/f1


def _per_class(confusion: np.ndarray) -> Dict[int, Dict[str, float]]:
  """[true][predicted] counts -> precision, recall, F1 per class."""
  out = {}
  for c in range(len(confusion)):
    tp = confusion[c, c]
    predicted, actual = confusion[:, c].sum(), confusion[c, :].sum()
    p = tp / predicted if predicted else 0.0
    r = tp / actual if actual else 0.0
    out[c] = {'precision': float(p), 'recall': float(r),
              'f1': float(2 * p * r / (p + r)) if p + r else 0.0}
  return out


def automl_side(model_name: str, project: str, region: str,
                api_endpoint: Optional[str] = None, credentials=None) -> Side:
  """The AutoML model's own evaluation (Vertex's evaluator, on the data
  items labelled ml_use=test), from its confusion matrix."""
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  _init(project, region, api_endpoint, credentials)
  model = aiplatform.Model(model_name)
  evaluations = model.list_model_evaluations()
  if not evaluations:
    raise AutoMLError(f'model {model_name} has no evaluation yet (has its '
                      'training pipeline finished?)')
  metrics = evaluations[0].to_dict().get('metrics', {})
  matrix = metrics.get('confusionMatrix') or {}
  names = [s.get('displayName') for s in matrix.get('annotationSpecs', [])]
  by_name = {display_name(c): c for c in range(features.NUM_CLASSES)}
  unknown = [n for n in names if n not in by_name]
  if not names or unknown:
    raise AutoMLError(f'model {model_name}: its evaluation has no confusion '
                      f'matrix over the Fashion-MNIST labels ({unknown or names})')
  rows = np.asarray(matrix.get('rows', []), np.float64)[:, :len(names)]
  confusion = np.zeros((features.NUM_CLASSES,) * 2)
  order = [by_name[n] for n in names]
  confusion[np.ix_(order, order)] = rows
  n = confusion.sum()
  return Side(name='AutoML', source=f'Vertex AI model evaluation of '
              f'{model_name} (its own evaluator)',
              accuracy=float(np.trace(confusion) / n) if n else 0.0,
              test_images=int(n), per_class=_per_class(confusion))


def cnn_side(pipeline_cfg) -> Side:
  """The newest evaluated CNN run: TFMA on the official test set."""
  from pipeline import summary as summary_lib  # pylint: disable=g-import-not-at-top
  store = summary_lib.open_store(pipeline_cfg)
  for run_id in reversed(summary_lib.run_ids(store)):
    s = summary_lib.summarize(pipeline_cfg, run_id, store)
    if s.metrics is not None:
      return Side(
          name='CNN', source=f'TFMA evaluation of pipeline run {run_id}',
          accuracy=float(s.metrics.overall['accuracy']),
          test_images=int(round(s.metrics.overall['example_count'])),
          per_class={c: {'precision': m['precision'], 'recall': m['recall'],
                         'f1': m['f1_score']}
                     for c, m in s.metrics.per_class.items()})
  raise AutoMLError(f'no evaluated pipeline run in {pipeline_cfg.metadata_path}'
                    '; run `fmnist run` first')


def format_comparison(cnn: Side, other: Side) -> str:
  lines = [f'{"":16} {cnn.name:>22} {other.name:>22}',
           f'{"accuracy":16} {cnn.accuracy:22.4f} {other.accuracy:22.4f}',
           f'{"test images":16} {cnn.test_images:22d} {other.test_images:22d}',
           '', f'{"class: F1 (P/R)":16} {cnn.name:>22} {other.name:>22}']
  for c in range(features.NUM_CLASSES):
    a, b = cnn.per_class.get(c, {}), other.per_class.get(c, {})
    fmt = lambda m: (f'{m["f1"]:.3f} ({m["precision"]:.3f}/{m["recall"]:.3f})'
                     if m else '-')
    lines.append(f'{features.CLASS_NAMES[c]:16} {fmt(a):>22} {fmt(b):>22}')
  lines += ['', f'{cnn.name}: {cnn.source}', f'{other.name}: {other.source}',
            'The two come from different evaluators (TFMA here, Vertex AI\'s '
            'own for AutoML) on the same official test images.']
  return '\n'.join(lines)


def write_comparison(cnn: Side, other: Side, output_dir: str) -> str:
  """index.html + per_class.png; returns the page's path."""
  import html  # pylint: disable=g-import-not-at-top
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  os.makedirs(output_dir, exist_ok=True)
  x = np.arange(features.NUM_CLASSES)
  fig, ax = plt.subplots(figsize=(10, 4))
  for k, side in enumerate((cnn, other)):
    ax.bar(x + (k - 0.5) * 0.4, [side.per_class.get(c, {}).get('f1', 0)
                                 for c in x], 0.4,
           label=f'{side.name} (accuracy {side.accuracy:.4f})')
  ax.set_xticks(x, features.CLASS_NAMES, rotation=30, ha='right')
  ax.set_ylabel('F1 on the test set')
  ax.set_ylim(0.5, 1.0)
  ax.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=2,
            frameon=False)
  fig.tight_layout()
  fig.savefig(os.path.join(output_dir, 'per_class.png'), dpi=100)
  plt.close(fig)
  page = os.path.join(output_dir, 'index.html')
  with open(page, 'w', encoding='utf-8') as f:
    f.write('<!doctype html><meta charset="utf-8"><title>CNN vs AutoML</title>'
            '<h1>CNN vs. the AutoML baseline</h1><img src="per_class.png">'
            f'<pre>{html.escape(format_comparison(cnn, other))}</pre>')
  return page
