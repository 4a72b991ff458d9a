"""Are the default model's remaining errors variance, or shared by every run?

  .venv/bin/python benchmarks/shared_errors.py [--seeds 42 7] [--epochs 21]

Trains the default recipe once per seed on the span's train split (the same
data and in-memory Keras loop as benchmarks/recipes.py) and compares the
models' flip-TTA predictions on `eval`: each model's accuracy, the accuracy
of their average (an ensemble), how many errors every model makes, and the
class confusions behind them. If the ensemble gains nothing and most errors
are shared, more runs, weight averaging or a bigger budget for the same
family will not buy accuracy; the errors are the classes the data itself
leaves ambiguous. Results: benchmarks/results/shared_errors.json, a
confusion-matrix PNG of the shared errors and a PNG of examples of them.
"""

import argparse
import collections
import json
import os
import time

import matplotlib
matplotlib.use('Agg')  # files only, no display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

import hardware  # benchmarks/hardware.py
import recipes  # benchmarks/recipes.py
from models import features
from models.config import ModelConfig

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')


def flip_tta_probabilities(model, x: np.ndarray) -> np.ndarray:
  """What the exported signatures serve: the mean over image and mirror."""
  mirrored = recipes._shifted(x, 0, 0, flip=True)  # pylint: disable=protected-access
  return (model.predict(x, batch_size=512, verbose=0)
          + model.predict(mirrored, batch_size=512, verbose=0)) / 2


def wrong_by_every_model(probabilities: dict, y: np.ndarray) -> np.ndarray:
  """A mask of the images every model classifies wrongly."""
  return np.all([p.argmax(1) != y for p in probabilities.values()], axis=0)


def compare(probabilities: dict, y: np.ndarray) -> dict:
  """Accuracy per model and of the average; errors shared by all models."""
  predictions = {k: p.argmax(1) for k, p in probabilities.items()}
  shared = wrong_by_every_model(probabilities, y)
  ensemble = np.mean(list(probabilities.values()), axis=0).argmax(1)
  first = next(iter(predictions.values()))
  names = features.CLASS_NAMES
  confusions = collections.Counter(
      (names[t], names[p]) for t, p in zip(y[shared], first[shared]))
  return {
      'accuracy': {k: float(np.mean(p == y)) for k, p in predictions.items()},
      'ensemble_accuracy': float(np.mean(ensemble == y)),
      'errors': {k: int(np.sum(p != y)) for k, p in predictions.items()},
      'errors_shared_by_all': int(shared.sum()),
      'shared_with_same_answer': int(np.sum(shared & np.all(
          [p == first for p in predictions.values()], axis=0))),
      'error_rate_per_class': {
          names[c]: float(np.mean(first[y == c] != c)) for c in range(len(names))},
      'top_shared_confusions': [
          {'true': t, 'predicted': p, 'count': n}
          for (t, p), n in confusions.most_common(10)],
      'shared_confusion_matrix': np.bincount(
          y[shared] * len(names) + first[shared],
          minlength=len(names) ** 2).reshape(len(names), -1).tolist(),
  }


def plot(matrix, path: str, title: str) -> None:
  names = features.CLASS_NAMES
  fig, ax = plt.subplots(figsize=(7, 6))
  image = ax.imshow(matrix, cmap='Reds')
  ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
  ax.set_yticks(range(len(names)), names)
  ax.set_xlabel('predicted (by the first seed)')
  ax.set_ylabel('true label')
  for i, row in enumerate(matrix):
    for j, n in enumerate(row):
      if n:
        ax.text(j, i, n, ha='center', va='center', fontsize=8)
  ax.set_title(title, fontsize=10)
  fig.colorbar(image)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def plot_examples(x: np.ndarray, y: np.ndarray, predicted: np.ndarray,
                  shared: np.ndarray, path: str, count: int = 24) -> None:
  """The first `count` errors every model made, with true and predicted labels."""
  names = features.CLASS_NAMES
  index = np.flatnonzero(shared)[:count]
  columns = 8
  rows = max(1, -(-len(index) // columns))
  fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.7))
  for ax in np.ravel(axes):
    ax.axis('off')
  for ax, i in zip(np.ravel(axes), index):
    ax.imshow(x[i].reshape(features.IMAGE_SIZE, features.IMAGE_SIZE),
              cmap='gray')
    ax.set_title(f'{names[y[i]]}\n-> {names[predicted[i]]}', fontsize=7)
  fig.suptitle('eval images every model got wrong (true -> predicted)',
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--seeds', type=int, nargs='+', default=[42, 7])
  p.add_argument('--epochs', type=int, default=ModelConfig().epochs)
  p.add_argument('--output', default=os.path.join(RESULTS,
                                                  'shared_errors.json'))
  args = p.parse_args(argv)
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  (x, y), (xv, yv) = recipes._data()  # pylint: disable=protected-access
  print(f'hardware: {hardware.describe()}; seeds {args.seeds}, '
        f'{args.epochs} epochs', flush=True)
  probabilities = {}
  seconds = {}
  for seed in args.seeds:
    cfg = ModelConfig(seed=seed, epochs=args.epochs)
    keras.utils.set_random_seed(seed)
    model = model_lib.build_model(cfg)
    callbacks = [c for c in model_lib.training_callbacks(cfg, '/tmp/shared-tb')
                 if isinstance(c, keras.callbacks.LearningRateScheduler)]
    start = time.perf_counter()
    model.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size,
              callbacks=callbacks, verbose=2)
    seconds[f'seed {seed}'] = time.perf_counter() - start
    probabilities[f'seed {seed}'] = flip_tta_probabilities(model, xv)
    print(f'seed {seed}: flip-TTA eval accuracy '
          f'{np.mean(probabilities[f"seed {seed}"].argmax(1) == yv):.4f}',
          flush=True)
  result = compare(probabilities, yv)
  result.update(hardware=hardware.describe(), epochs=args.epochs,
                training_seconds=seconds)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, 'w') as f:
    json.dump(result, f, indent=1)
  png = os.path.splitext(args.output)[0] + '.png'
  plot(result['shared_confusion_matrix'], png,
       f'{result["errors_shared_by_all"]} eval errors made by every model '
       f'(seeds {", ".join(str(seed) for seed in args.seeds)})')
  first = next(iter(probabilities.values())).argmax(1)
  examples = os.path.splitext(args.output)[0] + '-examples.png'
  plot_examples(xv, yv, first, wrong_by_every_model(probabilities, yv),
                examples)
  print(f'\nflip-TTA eval accuracy: '
        + ', '.join(f'{k} {v:.4f}' for k, v in result['accuracy'].items())
        + f'; their average {result["ensemble_accuracy"]:.4f}')
  print(f'errors: {result["errors"]}; made by every model: '
        f'{result["errors_shared_by_all"]} '
        f'({result["shared_with_same_answer"]} with the same wrong answer)')
  for c in result['top_shared_confusions'][:6]:
    print(f'  {c["true"]:>12} -> {c["predicted"]:<12} {c["count"]}')
  print(f'wrote {args.output}, {png} and {examples}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
