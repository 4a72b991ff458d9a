"""Temperature scaling: the fit finds a known miscalibration and the served
rescaling never changes a predicted class."""

import numpy as np
import pytest
from scipy import special
import tensorflow as tf

from models import temperature


def _underconfident(n=4000, true_over_served=2.0, seed=0):
  """Labels drawn from softmax(z); answers softmax(z / 2): too flat, so the
  temperature that restores the truth is 1 / 2."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 3, (n, 10))
  truth = special.softmax(logits, axis=1)
  labels = np.array([rng.choice(10, p=p) for p in truth])
  return special.softmax(logits / true_over_served, axis=1), labels


def test_fit_recovers_the_temperature_that_made_answers_too_flat():
  probabilities, labels = _underconfident()
  t = temperature.fit(probabilities, labels)
  assert t == pytest.approx(0.5, rel=0.1)
  fit = temperature.summary(probabilities, labels, t)
  assert fit['nll_after'] < fit['nll_before']
  assert fit['mean_top_probability_after'] > fit['mean_top_probability_before']


def test_a_calibrated_model_keeps_a_temperature_near_one():
  rng = np.random.default_rng(1)
  logits = rng.normal(0, 3, (4000, 10))
  probabilities = special.softmax(logits, axis=1)
  labels = np.array([rng.choice(10, p=p) for p in probabilities])
  assert temperature.fit(probabilities, labels) == pytest.approx(1.0, abs=0.1)


def test_served_rescaling_keeps_every_predicted_class_and_sums_to_one():
  probabilities, _ = _underconfident(n=500)
  probabilities[0] = np.eye(10)[3]  # exact zeros stay finite
  out = temperature.apply(tf.constant(probabilities, tf.float32), 0.6).numpy()
  assert np.isfinite(out).all()
  np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
  np.testing.assert_array_equal(out.argmax(axis=1),
                                probabilities.argmax(axis=1))
  np.testing.assert_allclose(
      out, special.softmax(np.log(np.clip(probabilities, 1e-12, 1)) / 0.6,
                           axis=1), rtol=1e-4, atol=1e-6)
  same = tf.constant(probabilities, tf.float32)
  assert temperature.apply(same, 1.0) is same


def test_fit_needs_labelled_examples():
  with pytest.raises(ValueError, match='at least one'):
    temperature.fit(np.zeros((0, 10)), np.zeros(0, int))
