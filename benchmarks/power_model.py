"""A small real CNN for the monitor's power benchmark, when no model is pushed.

The models/ CNN (one conv per block, filters 16-32-64, dense 128) trained for
8 epochs on the first 24,000 training images, through the real Transform
analyzers and the real export (the serving signatures a pushed model has).
Test accuracy 0.848 (measured by monitor_power.py): a benchmark stand-in, not
the pipeline's model (0.917).

  .venv/bin/python benchmarks/power_model.py OUT_DIR   # writes OUT_DIR/1/
"""

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET_DIR = '/usr/share/datasets/fashion-mnist'
TRAIN_IMAGES = 24_000
EPOCHS = 8


def train(out_dir: str) -> str:
  """Trains and exports to `out_dir/1`; returns that path."""
  sys.path.insert(0, os.path.join(ROOT, 'tests'))
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  import transform_builder  # pylint: disable=g-import-not-at-top
  from models import features  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from models import signatures  # pylint: disable=g-import-not-at-top
  from models.config import ModelConfig  # pylint: disable=g-import-not-at-top
  from pipeline import ingest  # pylint: disable=g-import-not-at-top
  images, labels = ingest.read_idx_pair(DATASET_DIR, ingest.TRAIN_FILES,
                                        limit=TRAIN_IMAGES)
  flat = images.reshape(len(images), -1).astype(np.int64)
  transform_dir = transform_builder.write_transform_output(
      flat[:2000], labels[:2000], os.path.join(out_dir, 'transform'))
  tft_output = tft.TFTransformOutput(transform_dir)
  x = tft_output.transform_raw_features(
      {features.IMAGE_KEY: flat, features.LABEL_KEY: labels.astype(np.int64)}
  )[features.transformed_name(features.IMAGE_KEY)]
  cfg = ModelConfig(conv_filters=(16, 32, 64), convs_per_block=1,
                    dense_units=128, epochs=EPOCHS, batch_size=128)
  model = model_lib.build_model(cfg)
  model.fit(x, labels.astype(np.int64), epochs=EPOCHS, batch_size=128,
            verbose=2)
  export_dir = os.path.join(out_dir, '1')
  signatures.export(model, tft_output, export_dir)
  return export_dir


if __name__ == '__main__':
  print(train(sys.argv[1]))
