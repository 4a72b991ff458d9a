"""Error rates of blessing policies: wrongly blocked vs. wrongly pushed.

Trains small, fast versions of the project's CNN (models.build_model with
16/32 filters, one conv per block, dense 64, no augmentation) on a slice of
the real training data, several seeds per recipe, and predicts the official
test images (all 10,000, and nested subsets to show how test size matters):
- same recipe, different seeds, same data: a policy that blocks the candidate
  is WRONGLY BLOCKING (the recipe did not get worse);
- degraded candidates against a normal baseline: 1 epoch, one epoch less,
  3/4 or half of the data, one class dropped from training. A policy that
  blesses them WRONGLY PUSHES.
Every ordered pair (baseline, candidate) of distinct models is one decision.
Policies are compared side by side on the same predictions.

  .venv/bin/python benchmarks/blessing_policy.py [--seeds 8] [--train 12000]

These are small models on a subset (not the 30-epoch default CNN on 54,000
images); their seed-to-seed spread is larger than the full model's, so the
wrong-block rates here are an upper bound for the full pipeline.
"""

import argparse
import itertools
import json
import os
import time

import numpy as np

import hardware  # benchmarks/hardware.py
from models import features
from models.config import ModelConfig
from pipeline import configs
from pipeline import ingest
from pipeline import paired

POLICIES = {
    'bare drop > 0 (old)': paired.BlessingPolicy(0.0, 0.0, 1.0),
    'drop > 0.5 pt': paired.BlessingPolicy(0.0, 0.005, 1.0),
    'McNemar a=0.05': paired.BlessingPolicy(0.0, 0.0, 0.05),
    'McNemar a=0.01': paired.BlessingPolicy(0.0, 0.0, 0.01),
    'McNemar a=0.05 & drop > 0.5 pt': paired.BlessingPolicy(0.0, 0.005, 0.05),
    'drop > 1 pt': paired.BlessingPolicy(0.0, 0.01, 1.0),
    'McNemar a=0.05 & drop > 1 pt (default)': paired.BlessingPolicy(0.0, 0.01, 0.05),
}
SMALL = dict(conv_filters=(16, 32), convs_per_block=1, dense_units=64,
             rotation_degrees=0.0, shift_fraction=0.0, shear_fraction=0.0,
             zoom_fraction=0.0, horizontal_flip=False, augment_probability=0.0)


def _train(x, y, x_test, epochs, seed):
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  cfg = ModelConfig(epochs=epochs, seed=seed, **SMALL)
  m = model_lib.build_model(cfg)
  m.fit(x, y, epochs=epochs, batch_size=cfg.batch_size, verbose=0)
  return np.argmax(m.predict(x_test, batch_size=1000, verbose=0), axis=1)


def _rates(baselines, candidates, labels, subset):
  """Share of (baseline, candidate) pairs each policy blocks."""
  blocked = {name: 0 for name in POLICIES}
  pairs = 0
  for (i, pa), (j, pb) in itertools.product(baselines.items(),
                                            candidates.items()):
    if i == j:
      continue
    y = labels[subset]
    test = paired.mcnemar_test(pa[subset] == y, pb[subset] == y)
    pairs += 1
    for name, policy in POLICIES.items():
      blocked[name] += policy.worse(test)
  return {k: v / pairs for k, v in blocked.items()}, pairs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--seeds', type=int, default=8)
  parser.add_argument('--train', type=int, default=12000)
  parser.add_argument('--epochs', type=int, default=4)
  parser.add_argument('--drop-class', type=int, default=6)  # Shirt
  parser.add_argument('--output', default=None, help='write results as JSON')
  args = parser.parse_args()
  images, labels = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                        ingest.TRAIN_FILES, limit=args.train)
  test_x, test_y = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                        ingest.TEST_FILES)

  def prep(x):
    x = x.reshape(len(x), features.NUM_PIXELS).astype(np.float32) / 255.0
    return (x - 0.286) / 0.353  # Fashion-MNIST pixel mean/std, as Transform does
  x, xt = prep(images), prep(test_x)
  half = len(x) // 2
  keep = labels != args.drop_class
  recipes = {
      'normal': lambda s: _train(x, labels, xt, args.epochs, s),
      'fewer epochs (1)': lambda s: _train(x, labels, xt, 1, s),
      f'one epoch less ({args.epochs - 1})': lambda s: _train(
          x, labels, xt, args.epochs - 1, s),
      '3/4 of the data': lambda s: _train(x[:3 * len(x) // 4],
                                          labels[:3 * len(x) // 4], xt,
                                          args.epochs, s),
      'half the data': lambda s: _train(x[:half], labels[:half], xt,
                                        args.epochs, s),
      f'class {features.CLASS_NAMES[args.drop_class]} dropped':
          lambda s: _train(x[keep], labels[keep], xt, args.epochs, s),
  }
  start = time.time()
  preds = {}
  for name, fn in recipes.items():
    n_seeds = args.seeds if name == 'normal' else max(2, args.seeds // 2)
    preds[name] = {s: fn(1000 + s) for s in range(n_seeds)}
    acc = [np.mean(p == test_y) for p in preds[name].values()]
    print(f'{name:<22} {len(acc)} seeds: test accuracy {np.mean(acc):.4f} '
          f'+- {np.std(acc):.4f} (min {min(acc):.4f}, max {max(acc):.4f})',
          flush=True)
  seconds = time.time() - start
  rng = np.random.default_rng(0)
  order = rng.permutation(len(test_y))
  results = {'hardware': hardware.describe(), 'train_images': args.train,
             'epochs': args.epochs, 'seconds': seconds, 'rates': {}}
  print(f'\n{sum(len(v) for v in preds.values())} models in {seconds:.0f} s '
        f'on {results["hardware"]}\n')
  for n_test in (len(test_y), 2000, 500):
    subset = order[:n_test]
    print(f'--- {n_test} test images: share of (baseline, candidate) pairs '
          'BLOCKED')
    header = f'  {"policy":<32} {"same recipe":>11}' + ''.join(
        f' {k[:16]:>16}' for k in recipes if k != 'normal')
    print(header + '   (same recipe = wrong block; others = 1 - wrong push)')
    for name in POLICIES:
      row = {}
      same, pairs = _rates(preds['normal'], preds['normal'], test_y, subset)
      row['same recipe'] = same[name]
      line = f'  {name:<32} {same[name]:11.2f}'
      for recipe in recipes:
        if recipe == 'normal':
          continue
        blocked, _ = _rates(preds['normal'], preds[recipe], test_y, subset)
        row[recipe] = blocked[name]
        line += f' {blocked[name]:16.2f}'
      print(line)
      results['rates'].setdefault(str(n_test), {})[name] = row
    print(f'  ({pairs} same-recipe pairs)\n')
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
