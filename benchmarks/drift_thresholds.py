"""Measures the drift statistics the curated schema's thresholds are set from.

Natural variation: Jensen-Shannon divergence of the pixel distribution and
L-infinity distance of the label distribution between disjoint slices of the
real training data (what a new, healthy span looks like). Real shifts:
inverted images, a brightness change, blur-like darkening, a class imbalance.
Thresholds belong well above the first group and below the second.

  .venv/bin/python benchmarks/drift_thresholds.py [--slice 5000]
"""

import argparse
import os
import tempfile

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import configs
from pipeline import ingest


def _stats(images, labels, schema, workdir, name):
  directory = os.path.join(workdir, name)
  ingest.write_split(images, labels, directory, shards=1, progress_label=name)
  return tfdv.generate_statistics_from_tfrecord(
      os.path.join(directory, '*'), stats_options=tfdv.StatsOptions(schema=schema))


def _measure(current, previous, schema):
  """(JS divergence of `image`, L-inf of `label`) with zero thresholds."""
  probe = schema_pb2.Schema()
  probe.CopyFrom(schema)
  for feature in probe.feature:
    if feature.name == 'image':
      feature.drift_comparator.jensen_shannon_divergence.threshold = 1e-12
    if feature.name == 'label':
      feature.drift_comparator.infinity_norm.threshold = 1e-12
  anomalies = tfdv.validate_statistics(current, probe,
                                       previous_statistics=previous)
  values = {}
  for info in anomalies.drift_skew_info:
    for m in info.drift_measurements:
      values[info.path.step[0]] = m.value
  return values.get('image', 0.0), values.get('label', 0.0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--slice', type=int, default=5000)
  args = parser.parse_args()
  schema = tfdv.load_schema_text(
      os.path.join(configs.DEFAULT_SCHEMA_DIR, 'schema.pbtxt'))
  images, labels = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                        ingest.TRAIN_FILES)
  n = args.slice
  workdir = tempfile.mkdtemp()
  base = _stats(images[:n], labels[:n], schema, workdir, 'base')
  cases = {}
  for k in range(1, 4):
    part = slice(k * n, (k + 1) * n)
    cases[f'natural: real slice {k}'] = (images[part], labels[part])
  test_x, test_y = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                        ingest.TEST_FILES)
  cases['natural: official test set'] = (test_x[:n], test_y[:n])
  other_x, other_y = images[n:2 * n], labels[n:2 * n]
  cases['shift: inverted images'] = (255 - other_x, other_y)
  cases['shift: brightness +40'] = (
      np.clip(other_x.astype(int) + 40, 0, 255).astype(np.uint8), other_y)
  cases['shift: contrast x0.7'] = ((other_x * 0.7).astype(np.uint8), other_y)
  keep = other_y < 5
  cases['shift: only classes 0-4'] = (other_x[keep], other_y[keep])
  keep = (other_y != 0) | (np.arange(n) % 2 == 0)
  cases['shift: half the T-shirts lost'] = (other_x[keep], other_y[keep])

  thresholds = {f.name: f.drift_comparator for f in schema.feature}
  print(f'{"case":<32} {"JS(image)":>10} {"Linf(label)":>12}')
  for name, (x, y) in cases.items():
    stats = _stats(x, y, schema, workdir, name.replace(' ', '_').replace(':', ''))
    js, linf = _measure(stats, base, schema)
    print(f'{name:<32} {js:10.5f} {linf:12.4f}')
  print(f'schema thresholds: JS {thresholds["image"].jensen_shannon_divergence.threshold}'
        f', L-inf {thresholds["label"].infinity_norm.threshold}')


if __name__ == '__main__':
  main()
