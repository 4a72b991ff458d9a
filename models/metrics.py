"""Per-class scores from a confusion matrix, one definition for every report.

The Trainer's experiment tracking (validation split) and the run summary
(TFMA's test-split matrix) both score classes one-vs-rest at top-1; a class
never predicted (or never present) scores 0, like scikit-learn's
`zero_division=0`.
"""

from typing import Tuple

import numpy as np


def class_scores(matrix) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(precision, recall, F1) per class of a [actual][predicted] matrix."""
  matrix = np.asarray(matrix, dtype=float)
  tp = np.diag(matrix)
  predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp),
                        where=predicted > 0)
  recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
  f1 = np.divide(2 * precision * recall, precision + recall,
                 out=np.zeros_like(tp), where=(precision + recall) > 0)
  return precision, recall, f1
