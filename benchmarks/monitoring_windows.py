"""How the monitor's skew and drift measures behave, by window size.

Natural served traffic is the official test set (never trained on) through
the served model; shifted traffic is the same images changed the way real
inputs go wrong (inverted, brighter, lower contrast, rotated, off-centre, one
class only). Every figure comes from the monitor's own code path
(`monitoring.statistics`: TFDV statistics and `validate_statistics` against
the served model's training statistics found through MLMD), so the default
`--min-instances` and the predicted-class thresholds are set from it.

Needs a pipeline run with a pushed model in HOME (`make run`):

  .venv/bin/python benchmarks/monitoring_windows.py [--home work] [--repeats 100]
"""

import argparse
import os
import time

import numpy as np
from scipy import ndimage
import tensorflow as tf
import tensorflow_data_validation as tfdv

from models import signatures
from monitoring import baseline as baseline_lib
from monitoring import config as config_lib
from monitoring import statistics
from pipeline import configs
from pipeline import ingest
from pipeline import pusher

JS = ('image', 'Jensen-Shannon')
LINF = (statistics.PREDICTED_CLASS_KEY, 'L-infinity')


def _predict(model, images: np.ndarray) -> np.ndarray:
  serve = model.signatures['serving_default']
  out = [serve(pixels=tf.constant(images[i:i + 1000].astype(np.float32)))
         [signatures.CLASS_IDS].numpy().reshape(-1) for i in range(0, len(images), 1000)]
  return np.concatenate(out).astype(np.int64)


def _stats(images, classes, schema):
  return statistics.served_statistics(
      images.reshape(len(images), -1).astype(np.int64), classes.tolist(),
      schema)


def _values(checks, check):
  found = {(m.feature, m.measure): m.value for m in checks.measurements
           if m.check == check}
  return found.get(JS, float('nan')), found.get(LINF, float('nan'))


def _shifts(images: np.ndarray, labels: np.ndarray, rng) -> dict:
  """Shifted versions of real test images (each case its own pool)."""
  sign = rng.choice([-1, 1], len(images))[:, None, None]
  rotated = np.where(sign > 0,
                     ndimage.rotate(images, 20, axes=(1, 2), reshape=False,
                                    order=1),
                     ndimage.rotate(images, -20, axes=(1, 2), reshape=False,
                                    order=1))
  inverted = 255 - images
  part = rng.random(len(images)) < 0.25
  footwear = np.isin(labels, (5, 7, 9))
  return {
      'inverted': inverted,
      'brightness +40': np.clip(images.astype(int) + 40, 0, 255),
      'contrast x0.7': (images * 0.7).astype(np.uint8),
      'rotated +-20 deg': rotated,
      'off-centre 4 px': ndimage.shift(images, (0, 4, 4), order=0),
      '25% inverted': np.where(part[:, None, None], inverted, images),
      'one class (Trouser)': images[labels == 1],
      'no footwear (5,7,9)': images[~footwear],
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--home', default=configs.DEFAULT_HOME)
  parser.add_argument('--windows', default='100,300,500,1000,3000')
  parser.add_argument('--repeats', type=int, default=100,
                      help='random natural window pairs per size')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  started = time.time()
  sizes = [int(s) for s in args.windows.split(',')]
  rng = np.random.default_rng(args.seed)

  pipeline_cfg = configs.PipelineConfig.from_home(args.home)
  versions = pusher.pushed_versions(pipeline_cfg.serving_dir)
  if not versions:
    raise SystemExit(f'no pushed model under {pipeline_cfg.serving_dir}: run '
                     '`make run` first')
  version = str(versions[-1])
  cfg = config_lib.MonitorConfig.from_home(args.home)
  base = baseline_lib.from_lineage(cfg.metadata_path, version)
  schema = statistics.monitoring_schema(
      tfdv.load_schema_text(cfg.schema_path),
      cfg.prediction_skew_linf, cfg.prediction_drift_linf)
  training = statistics.training_baseline(base.statistics)
  print(f'model {version}; baseline: {base.description}')

  model = tf.saved_model.load(os.path.join(pipeline_cfg.serving_dir, version))
  images, labels = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                        ingest.TEST_FILES)
  predicted = _predict(model, images)
  print(f'test-set accuracy of the served model: '
        f'{np.mean(predicted == labels):.4f}')

  print(f'\nNatural traffic: {args.repeats} random pairs of disjoint test-set '
        'windows per size (skew: a window vs. training; drift: a window vs. '
        'the other); max / 99th percentile')
  print(f'{"window":>7} | {"skew JS(image)":>15} | {"skew Linf(pred)":>15} | '
        f'{"drift JS(image)":>15} | {"drift Linf(pred)":>16} | alerting')
  natural = {}
  for n in sizes:
    rows = {statistics.SKEW: [], statistics.DRIFT: []}
    alerts = 0
    for _ in range(args.repeats):
      pick = rng.choice(len(images), 2 * n, replace=False)
      now, before = pick[:n], pick[n:]
      prev = _stats(images[before], predicted[before], schema)
      checks = statistics.check(_stats(images[now], predicted[now], schema),
                                schema, training, prev)
      for check in rows:
        rows[check].append(_values(checks, check))
      alerts += not checks.healthy
    natural[n] = prev
    cells = []
    for check in (statistics.SKEW, statistics.DRIFT):
      arr = np.array(rows[check])
      for col in range(2):
        cells.append(f'{arr[:, col].max():.4f} / {np.percentile(arr[:, col], 99):.4f}')
    print(f'{n:>7} | ' + ' | '.join(f'{c:>15}' for c in cells) +
          f'  | {alerts}/{args.repeats}')

  default = config_lib.DEFAULT_MIN_INSTANCES
  print('\nShifted traffic: skew vs. training, JS(image) / Linf(pred), one '
        f'window per size; last column: drift vs. a natural window of {default}')
  print(f'{"case":<20} ' + ' '.join(f'{"n=" + str(n):>16}' for n in sizes) +
        f' {"drift":>16}')
  pool = rng.permutation(len(images))
  for name, x in _shifts(images[pool], labels[pool], rng).items():
    preds = _predict(model, x[:max(sizes)])
    cells = []
    for n in sizes:
      if n > len(x):
        cells.append(f'{"(too few)":>16}')
        continue
      checks = statistics.check(_stats(x[:n], preds[:n], schema), schema,
                                training)
      js, linf = _values(checks, statistics.SKEW)
      cells.append(f'{js:.4f} / {linf:.3f}{" " if checks.healthy else "*"}')
    if default in natural:
      checks = statistics.check(
          _stats(x[:default], preds[:default], schema), schema, training,
          natural[default])
      js, linf = _values(checks, statistics.DRIFT)
      drift_alert = any(m.alert for m in checks.measurements
                        if m.check == statistics.DRIFT)
      cells.append(f'{js:.4f} / {linf:.3f}{"*" if drift_alert else " "}')
    print(f'{name:<20} ' + ' '.join(f'{c:>16}' for c in cells))
  print(f'\n* = alert. Thresholds: JS(image) 0.01 (schema, skew and drift); '
        f'Linf(pred) skew {cfg.prediction_skew_linf}, drift '
        f'{cfg.prediction_drift_linf}; default --min-instances {default}.')
  print(f'{time.time() - started:.0f} s')


if __name__ == '__main__':
  main()
