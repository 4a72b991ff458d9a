"""Served statistics and checks: TFDV's numbers, our wiring."""

import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_data_validation as tfdv

from models import features
from monitoring import baseline as baseline_lib
from monitoring import config as config_lib
from monitoring import statistics
from pipeline import configs
from pipeline import validation


def _schema():
  return statistics.monitoring_schema(
      tfdv.load_schema_text(os.path.join(configs.DEFAULT_SCHEMA_DIR,
                                         'schema.pbtxt')),
      config_lib.PREDICTION_SKEW_LINF, config_lib.PREDICTION_DRIFT_LINF)


def test_in_memory_statistics_equal_tfdv_beam_statistics(test_images,
                                                         tmp_path):
  images, labels = test_images
  schema = _schema()
  pixels = images[:300].reshape(300, -1).astype(np.int64).tolist()
  classes = labels[:300].astype(int).tolist()
  served = statistics.served_statistics(pixels, classes, schema)
  batch = pa.RecordBatch.from_arrays(
      [pa.array(pixels, pa.list_(pa.int64())),
       pa.array([[c] for c in classes], pa.list_(pa.int64()))],
      [features.IMAGE_KEY, statistics.PREDICTED_CLASS_KEY])
  out = str(tmp_path / 'stats.pb')
  with beam.Pipeline() as p:
    _ = (p | beam.Create([batch])
         | tfdv.GenerateStatistics(tfdv.StatsOptions(schema=schema))
         | tfdv.WriteStatisticsToBinaryFile(out))
  assert served == tfdv.load_stats_binary(out)
  assert served.datasets[0].num_examples == 300


def test_the_monitoring_schema_states_its_comparators():
  schema = _schema()
  predicted = tfdv.get_feature(schema, statistics.PREDICTED_CLASS_KEY)
  assert predicted.int_domain.is_categorical
  assert (predicted.int_domain.min, predicted.int_domain.max) == (0, 9)
  assert predicted.skew_comparator.infinity_norm.threshold == (
      config_lib.PREDICTION_SKEW_LINF)
  assert predicted.drift_comparator.infinity_norm.threshold == (
      config_lib.PREDICTION_DRIFT_LINF)
  # Below 0.1: a class that stops arriving (share 0.1 -> 0) is skew.
  assert config_lib.PREDICTION_SKEW_LINF < 0.1
  # The curated schema's image comparators are used unchanged.
  image = tfdv.get_feature(schema, features.IMAGE_KEY)
  assert image.skew_comparator.jensen_shannon_divergence.threshold == 0.01


def test_training_labels_stand_for_the_predictions(statistics_uri):
  training = baseline_lib.load_split_statistics(statistics_uri)
  base = statistics.training_baseline(training)
  by_name = {f.path.step[0]: f for f in base.datasets[0].features}
  assert by_name[statistics.PREDICTED_CLASS_KEY].string_stats == (
      by_name[features.LABEL_KEY].string_stats)
  assert len(training.datasets[0].features) == 2  # the input is not changed


def test_a_missing_class_is_skew_and_each_check_is_tagged(test_images,
                                                          statistics_uri):
  images, labels = test_images
  schema = _schema()
  training = statistics.training_baseline(
      baseline_lib.load_split_statistics(statistics_uri))
  keep = labels != 1  # no trousers any more
  served = statistics.served_statistics(
      images[keep].reshape(keep.sum(), -1).astype(np.int64).tolist(),
      labels[keep].astype(int).tolist(), schema)
  checks = statistics.check(served, schema, training, previous=served)
  assert not checks.healthy
  assert checks.lines() == [f'[skew] {line}'
                            for line in validation.describe(checks.skew)]
  (skew,) = [m for m in checks.measurements
             if m.check == statistics.SKEW and m.measure == 'L-infinity']
  assert skew.alert and 0.09 < skew.value < 0.11
  # Against itself there is no drift; TFDV still reports the measurement.
  drift = [m for m in checks.measurements if m.check == statistics.DRIFT]
  assert {m.feature for m in drift} == {features.IMAGE_KEY,
                                        statistics.PREDICTED_CLASS_KEY}
  assert all(m.value == 0 and not m.alert for m in drift)
