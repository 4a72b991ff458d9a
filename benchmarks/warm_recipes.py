"""Warm-start recipes side by side on the eval split (issue 10's retraining).

  .venv/bin/python benchmarks/warm_recipes.py [--base-fraction 0.5]
      [--warm-epochs 8] [--only NAME] [--model-param K=V ...]

A retraining run here sees the same distribution with more images (the only
retraining this dataset allows). So: a base model is trained from scratch
with the default recipe on a seeded share of benchmarks/recipes.py's train
split (its weights are kept in --base-weights and reused by later runs),
then each warm recipe starts from those weights, with a fresh optimizer and
its own warm-start knobs (models/warm_start.py: plain, or shrunk and
perturbed), and trains `warm_start_epochs` epochs on the whole train split.
Reported per recipe: eval accuracy plain and with the served TTA, seconds per
epoch. The cold default on the whole split, with the same seed, is
benchmarks/recipes.py's 'default' (its results file is named in the output).
Recipes are chosen on `eval` (held out from base and warm runs alike), never
on `test`. Results: benchmarks/results/warm_recipes.json.
"""

import argparse
import json
import os
import time

import numpy as np

import hardware  # benchmarks/hardware.py
import recipes  # benchmarks/recipes.py: the same data, callbacks and TTA
from fmnist import options
from models.config import ModelConfig

# Each warm recipe's warm-start knobs; every other knob is the default's.
WARM_RECIPES = {
    'plain warm start (lr 1e-3)': {},
    'shrink 0.4, perturb 0.1 (lr 1e-3)': dict(warm_start_shrink=0.4,
                                              warm_start_perturb=0.1),
    'shrink 0.4, perturb 0.1 (lr 2e-3)': dict(warm_start_shrink=0.4,
                                              warm_start_perturb=0.1,
                                              warm_start_learning_rate=2e-3),
    'plain warm start (lr 2e-3)': dict(warm_start_learning_rate=2e-3),
}


def _fit(model, cfg: ModelConfig, x, y, xv, yv):
  start = time.perf_counter()
  history = model.fit(x, y, validation_data=(xv, yv), epochs=cfg.epochs,
                      batch_size=cfg.batch_size,
                      callbacks=recipes.fit_callbacks(cfg), verbose=2)
  return (history.history['val_sparse_categorical_accuracy'],
          time.perf_counter() - start)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--base-fraction', type=float, default=0.5,
                 help='the base model trains on this seeded share of the '
                      'train split (a span before the new images arrived)')
  p.add_argument('--warm-epochs', type=int, default=8)
  p.add_argument('--model-param', action='append', default=[],
                 help='KEY=JSON applied to base and warm recipes alike')
  p.add_argument('--only', default=None,
                 help='run only warm recipes whose name contains this')
  p.add_argument('--base-weights', default='/tmp/warm_recipes-base.weights.h5',
                 help='where the base model\'s weights are kept; reused when '
                      'present (delete it after changing --base-fraction)')
  p.add_argument('--output', default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'results',
      'warm_recipes.json'))
  args = p.parse_args(argv)
  if not 0 < args.base_fraction < 1:
    p.error(f'--base-fraction must be in (0, 1), got {args.base_fraction}')
  if args.warm_epochs < 1:
    p.error(f'--warm-epochs must be >= 1, got {args.warm_epochs}')
  try:
    common = options.model_overrides(args.model_param)
  except options.UsageError as e:
    p.error(str(e))
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from models import warm_start  # pylint: disable=g-import-not-at-top
  (x, y), (xv, yv) = recipes._data()  # pylint: disable=protected-access
  base = ModelConfig.from_dict({**ModelConfig().to_dict(), **common})
  keep = np.sort(np.random.default_rng(0).permutation(len(x))[
      :int(round(len(x) * args.base_fraction))])
  print(f'hardware: {hardware.describe()}; base on {len(keep)} of {len(x)} '
        f'train images, {base.epochs} epochs; warm recipes on all of them, '
        f'{args.warm_epochs} epochs; {len(xv)} eval images; common {common}',
        flush=True)
  results = {'hardware': hardware.describe(), 'common': common,
             'base_images': len(keep), 'train_images': len(x),
             'warm_epochs': args.warm_epochs, 'recipes': {},
             'cold_reference': 'benchmarks/recipes.py "default" with the '
                               'same seed and epochs on all train images'}
  if os.path.exists(args.base_weights):
    print(f'base: reusing {args.base_weights}', flush=True)
    base_model = model_lib.build_model(base)
    base_model.load_weights(args.base_weights)
  else:
    keras.utils.set_random_seed(base.seed)
    base_model = model_lib.build_model(base)
    val, seconds = _fit(base_model, base, x[keep], y[keep], xv, yv)
    base_model.save_weights(args.base_weights)
    results['base'] = {'val_accuracy_last': val[-1],
                       'seconds_per_epoch': seconds / base.epochs}
  results['base_tta'] = recipes.tta_accuracies(base_model, xv, yv)
  print(f'base: eval {results["base_tta"]}', flush=True)
  for name, knobs in WARM_RECIPES.items():
    if args.only and args.only not in name:
      continue
    cfg = ModelConfig.from_dict({**base.to_dict(), **knobs,
                                 'warm_start_epochs': args.warm_epochs})
    warm = cfg.warm_started()
    keras.utils.set_random_seed(warm.seed)
    model = model_lib.build_model(warm)
    model.load_weights(args.base_weights)
    model_lib.compile_model(model, warm)  # a fresh optimizer, as the Trainer
    warm_start.shrink_perturb(model, warm)
    val, seconds = _fit(model, warm, x, y, xv, yv)
    tta = recipes.tta_accuracies(model, xv, yv)
    results['recipes'][name] = {
        'knobs': knobs, 'config': warm.to_dict(), 'val_accuracy_last': val[-1],
        'val_accuracy_per_epoch': val, 'val_accuracy_tta': tta,
        'seconds_per_epoch': seconds / warm.epochs}
    print(f'{name}: eval accuracy {val[-1]:.4f}, flip + shift TTA (served) '
          f'{tta["flip_shift_tta"]:.4f}; {seconds / warm.epochs:.0f} s/epoch',
          flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as f:
      json.dump(results, f, indent=1)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
