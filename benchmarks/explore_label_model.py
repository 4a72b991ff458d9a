"""Which fast model gives `fmnist explore` its out-of-sample probabilities.

Side by side in one run, on the same span and the same 3 stratified folds of
its PCA-50 features: a logistic regression and the MLP that
`pipeline/explore/label_issues.py` uses. Prints wall time, out-of-sample
accuracy and how many images confident learning flags with each (fewer false
flags from the more accurate model), next to the hardware.

  .venv/bin/python benchmarks/explore_label_model.py --home work [--span N]
"""

import argparse
import time
import warnings

from cleanlab.filter import find_label_issues
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.model_selection import cross_val_predict
from sklearn.neural_network import MLPClassifier

import hardware  # benchmarks/hardware.py
from models import features
from pipeline.explore import data
from pipeline.explore import embedding
from pipeline.explore import label_issues


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--home', default='work')
  parser.add_argument('--span', type=int, default=None)
  args = parser.parse_args()
  span = data.read_span(f'{args.home}/data', args.span)
  everything = span.concat(features.SPLITS)
  points = embedding.pca(embedding.flat(everything.images)).points
  x = points / points.std(0)
  y = everything.labels
  folds = StratifiedKFold(label_issues.FOLDS, shuffle=True, random_state=0)
  models = {
      'logistic regression': LogisticRegression(max_iter=300),
      'MLP 128 (explore)': MLPClassifier(
          (128,), max_iter=label_issues.epochs_for(len(y)), random_state=0),
  }
  print(hardware.describe())
  print(f'span {span.span}: {len(y)} images, PCA-{points.shape[1]}, '
        f'{label_issues.FOLDS} folds')
  results = {}
  for name, model in models.items():
    start = time.monotonic()
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', ConvergenceWarning)
      probs = cross_val_predict(model, x, y, cv=folds, method='predict_proba')
    seconds = time.monotonic() - start
    flagged = int(find_label_issues(y, probs, filter_by='confident_learning',
                                    n_jobs=1).sum())
    results[name] = seconds
    print(f'  {name:<22} {seconds:6.1f} s  accuracy '
          f'{np.mean(probs.argmax(1) == y):.4f}  flagged {flagged}')
  base = results['logistic regression']
  print('  time ratio MLP / LR: '
        f'{results["MLP 128 (explore)"] / base:.2f}')


if __name__ == '__main__':
  main()
