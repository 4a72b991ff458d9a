"""Per-class metrics derived from TFMA's confusion matrix."""

import pytest

from pipeline import summary


def test_class_metrics_from_a_confusion_matrix():
  confusion = [[8, 2, 0],
               [1, 9, 0],
               [0, 5, 0]]   # class 2 is never predicted
  m = summary.class_metrics(confusion)
  assert m[0]['precision'] == pytest.approx(8 / 9)
  assert m[0]['recall'] == pytest.approx(8 / 10)
  assert m[1]['precision'] == pytest.approx(9 / 16)
  assert m[1]['f1_score'] == pytest.approx(2 * (9 / 16) * 0.9 / (9 / 16 + 0.9))
  assert m[2] == {'precision': 0.0, 'recall': 0.0, 'f1_score': 0.0, 'count': 5}
