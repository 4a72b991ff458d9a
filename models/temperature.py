"""Temperature scaling of the served probabilities (Guo et al., 2017).

Label smoothing leaves the model underconfident by design (its served top
probability averages ~0.86 at ~0.95 accuracy). One scalar T, fitted on `eval`
after training, sharpens the served answer again: `softmax(log(p) / T)` of the
probabilities `p` the signature would answer (after test-time augmentation).
It is the same monotone map for every class of an image, so the predicted
class, and with it every accuracy figure, cannot change.
"""

from typing import Dict

import numpy as np
from scipy import optimize
from scipy import special
import tensorflow as tf

# Keeps log(p) finite; a float32 softmax rounds the tiniest answers to zero.
_FLOOR = 1e-12
# The search interval: wide enough for any trained model (the label-smoothed
# default fits ~0.6), bounded so a degenerate split cannot push T to 0 or inf.
BOUNDS = (0.05, 20.0)


def _log(probabilities: np.ndarray) -> np.ndarray:
  return np.log(np.clip(np.asarray(probabilities, np.float64), _FLOOR, 1.0))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray,
                            temperature: float = 1.0) -> float:
  """Mean cross-entropy of `labels` under the probabilities rescaled by T."""
  z = _log(probabilities) / temperature
  picked = z[np.arange(len(labels)), np.asarray(labels)]
  return float(np.mean(special.logsumexp(z, axis=1) - picked))


def fit(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """The T in `BOUNDS` that minimizes the negative log-likelihood."""
  if len(labels) == 0:
    raise ValueError('temperature scaling needs at least one labelled example')
  result = optimize.minimize_scalar(
      lambda t: negative_log_likelihood(probabilities, labels, t),
      bounds=BOUNDS, method='bounded')
  return float(result.x)


def rescale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
  """`softmax(log(p) / T)` in NumPy, what `apply` serves."""
  return special.softmax(_log(probabilities) / temperature, axis=1)


def summary(probabilities: np.ndarray, labels: np.ndarray,
            temperature: float) -> Dict[str, float]:
  """What the fit did on its split: NLL and mean top probability before and
  after, next to the accuracy they should approach."""
  after = rescale(probabilities, temperature)
  return {
      'temperature': temperature,
      'examples': int(len(labels)),
      'accuracy': float(np.mean(np.argmax(probabilities, axis=1) == labels)),
      'nll_before': negative_log_likelihood(probabilities, labels),
      'nll_after': negative_log_likelihood(probabilities, labels, temperature),
      'mean_top_probability_before': float(np.mean(np.max(probabilities, 1))),
      'mean_top_probability_after': float(np.mean(np.max(after, axis=1))),
  }


def describe(fit: Dict[str, float]) -> str:
  """`summary`'s figures as the one line the Trainer logs and `fmnist run`,
  the report and benchmarks/full_run.py print."""
  return (f'served temperature {fit["temperature"]:.3f} (fitted on '
          f'{fit["examples"]} eval images: NLL {fit["nll_before"]:.4f} -> '
          f'{fit["nll_after"]:.4f}, mean top probability '
          f'{fit["mean_top_probability_before"]:.3f} -> '
          f'{fit["mean_top_probability_after"]:.3f} at accuracy '
          f'{fit["accuracy"]:.4f})')


def apply(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
  """`softmax(log(p) / T)` in the serving graph (the identity for T = 1)."""
  if temperature == 1.0:
    return probabilities
  return tf.nn.softmax(tf.math.log(tf.maximum(probabilities, _FLOOR))
                       / temperature, axis=-1)
