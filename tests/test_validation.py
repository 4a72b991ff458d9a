"""The curated schema and the drift check, with TFDV on real and broken data."""

import os

import numpy as np
import pytest
import tensorflow_data_validation as tfdv

from pipeline import configs
from pipeline import ingest
from pipeline import validation

SCHEMA = tfdv.load_schema_text(os.path.join(configs.DEFAULT_SCHEMA_DIR,
                                            'schema.pbtxt'))


def _stats(tmp_path, name, images, labels):
  directory = str(tmp_path / name)
  ingest.write_split(images, labels, directory, shards=1, progress_label=name)
  return tfdv.generate_statistics_from_tfrecord(
      os.path.join(directory, '*'),
      stats_options=tfdv.StatsOptions(schema=SCHEMA))


@pytest.fixture(scope='module')
def clean_stats(real_slice, tmp_path_factory):
  images, labels = real_slice
  return _stats(tmp_path_factory.mktemp('clean'), 'clean', images, labels)


def _anomalous_features(anomalies):
  return {name: [r.type for r in info.reason]
          for name, info in anomalies.anomaly_info.items()}


def test_real_data_passes_schema_and_drift(clean_stats, real_slice, tmp_path):
  images, labels = real_slice
  # Another slice of the real data: natural variation is not drift.
  other = _stats(tmp_path, 'other', images[::-1].copy(), labels[::-1].copy())
  anomalies = validation.drift_anomalies(other, SCHEMA, clean_stats)
  assert not validation.has_anomalies(anomalies), validation.describe(anomalies)


def test_labels_outside_the_domain_are_named(real_slice, tmp_path):
  images, labels = real_slice
  bad = labels.copy()
  bad[:5] = 12
  anomalies = validation.drift_anomalies(
      _stats(tmp_path, 'labels', images, bad), SCHEMA, None)
  assert 'label' in _anomalous_features(anomalies)
  assert any('label' in line for line in validation.describe(anomalies))


def test_wrong_image_size_is_named(tmp_path):
  images = np.zeros((20, 32, 32), np.uint8)
  anomalies = validation.drift_anomalies(
      _stats(tmp_path, 'size', images, np.arange(20, dtype=np.uint8) % 10),
      SCHEMA, None)
  assert 'image' in _anomalous_features(anomalies)


def test_pixel_drift_is_caught(clean_stats, real_slice, tmp_path):
  images, labels = real_slice
  # Inverted images (dark garments on white): a real distribution shift.
  drifted = _stats(tmp_path, 'inverted', 255 - images, labels)
  anomalies = validation.drift_anomalies(drifted, SCHEMA, clean_stats)
  reasons = _anomalous_features(anomalies)
  assert 'image' in reasons
  assert any('drift' in line.lower() or 'divergence' in line.lower()
             for line in validation.describe(anomalies))
  # Without a previous span there is nothing to drift from.
  assert not validation.has_anomalies(
      validation.drift_anomalies(drifted, SCHEMA, None))


def test_label_distribution_drift_is_caught(clean_stats, real_slice, tmp_path):
  images, labels = real_slice
  keep = labels < 5  # half the classes vanish
  drifted = _stats(tmp_path, 'classes', images[keep], labels[keep])
  anomalies = validation.drift_anomalies(drifted, SCHEMA, clean_stats)
  assert 'label' in _anomalous_features(anomalies)


def test_serving_environment_does_not_require_the_label(real_slice):
  assert 'SERVING' in SCHEMA.default_environment
  label = next(f for f in SCHEMA.feature if f.name == 'label')
  assert 'SERVING' in label.not_in_environment


def test_gate_message_names_span_split_and_anomaly(real_slice, tmp_path):
  images, labels = real_slice
  bad = labels.copy()
  bad[0] = 42
  anomalies = validation.drift_anomalies(
      _stats(tmp_path, 'msg', images[:50], bad[:50]), SCHEMA, None)
  message = validation.gate_message(7, {'train': anomalies})
  assert message.startswith('span 7 was blocked before training')
  assert "[train] feature 'label'" in message
  assert validation.gate_message(7, {'train': type(anomalies)()}) == ''
