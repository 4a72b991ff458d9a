"""Training step time of CNN shapes against their FLOPs, side by side.

  .venv/bin/python benchmarks/architectures.py [--steps 12] [--rounds 2]

Issue 10 needs ≥ 94.5 % test accuracy from a model whose 21 epochs fit 20
minutes on a 2-core AVX2 machine, i.e. a training step at most ~1.85x the
one-conv 32-64-128 model's (the default when this was written; every shape
is relative to it). The only change that moved `eval` accuracy past its
plateau was a second conv per block (README "The model"), so the question is
which two-conv shapes are cheap enough. Each oneDNN setting runs in its own
process (TF reads the variables at import): oneDNN on, as `fmnist run`
trains, and on with ONEDNN_MAX_CPU_ISA=AVX2 (the kernels an AVX2-only CPU
gets). Each process times training steps inside `fit` (batch 128,
augmentation on; see onednn.time_training) of every shape on in-memory
random data; the best of `--rounds` is kept. Every
shape is reachable with `--model-param`, so its accuracy is measured with
`benchmarks/recipes.py --only default --model-param ...` on `eval`.
Results: benchmarks/results/architectures.json.
"""

import os
import sys

import onednn  # benchmarks/onednn.py
from models import config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Name -> ModelConfig overrides (the default recipe otherwise). Every shape
# names its convs and filters, so the table keeps its meaning when the
# default changes.
SHAPES = {
    'one conv per block, 32-64-128': {'convs_per_block': 1,
                                      'conv_filters': [32, 64, 128]},
    'one conv per block, wider 32-96-192': {'convs_per_block': 1,
                                            'conv_filters': [32, 96, 192]},
    'two convs per block, 16-32-64': {'convs_per_block': 2,
                                      'conv_filters': [16, 32, 64]},
    'two convs per block, 16-32-96': {'convs_per_block': 2,
                                      'conv_filters': [16, 32, 96]},
    'two convs per block, 16-32-128': {'convs_per_block': 2,
                                       'conv_filters': [16, 32, 128]},
    'two convs per block, 16-48-128': {'convs_per_block': 2,
                                       'conv_filters': [16, 48, 128]},
    'two convs per block, 24-48-96': {'convs_per_block': 2,
                                      'conv_filters': [24, 48, 96]},
    'two convs per block, 24-48-128': {'convs_per_block': 2,
                                       'conv_filters': [24, 48, 128]},
    'two convs per block, 32-64-128 (the seeds)': config.SEEDS_ARCHITECTURE,
    # Leaving the plain stack (issue 10: justify it with numbers): ResNet
    # basic blocks (a shortcut around each pair of convs), as deep as the
    # default, and twice as deep with global average pooling.
    'residual, two convs per block, 16-32-128': {
        'convs_per_block': 2, 'conv_filters': [16, 32, 128], 'residual': True},
    'residual, four convs per block, 12-24-64': {
        'convs_per_block': 4, 'conv_filters': [12, 24, 64], 'residual': True},
    'residual, four convs per block, 16-32-64, global pool': {
        'convs_per_block': 4, 'conv_filters': [16, 32, 64], 'residual': True,
        'global_pool': True},
    # Fewer FLOPs per conv instead of fewer convs: the default's last convs
    # depthwise-separable (a 3x3 filter per channel, then a 1x1 conv).
    'two convs per block, 16-32-128, last conv separable': {
        'convs_per_block': 2, 'conv_filters': [16, 32, 128],
        'separable_convs': 1},
    'two convs per block, 16-32-128, last block separable': {
        'convs_per_block': 2, 'conv_filters': [16, 32, 128],
        'separable_convs': 2},
    'two convs per block, 16-32-128, all but the first separable': {
        'convs_per_block': 2, 'conv_filters': [16, 32, 128],
        'separable_convs': 5},
}
REFERENCE = next(iter(SHAPES))
# The shape `ModelConfig()` trains today, the second column of ratios.
DEFAULT = next(
    (name for name, p in SHAPES.items()
     if tuple(p['conv_filters']) == config.ModelConfig().conv_filters
     and p['convs_per_block'] == config.ModelConfig().convs_per_block
     and p.get('residual', False) == config.ModelConfig().residual), None)
SETTINGS = {k: v for k, v in onednn.SETTINGS.items() if k != 'oneDNN off'}


def child(steps: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, REPO)
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from models.config import ModelConfig  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  out = {}
  for name, params in SHAPES.items():
    cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **params})
    out[name] = onednn.time_training(model_lib.build_model(cfg), 128, steps,
                                     rng)
  return out


def main(argv=None) -> int:
  measured = onednn.child_or_measure(__file__, __doc__, 'architectures.json',
                                     SETTINGS, child, argv)
  if measured is None:
    return 0
  args, results = measured
  print(f'\n{"":22} {"shape":54} {"MFLOP":>6} {"ms/step":>8} '
        f'{"x 1-conv":>9} {"x default":>9} {"peak %":>7}')
  for setting, by_shape in results.items():
    base = by_shape[REFERENCE]['ms_per_step']
    default = by_shape[DEFAULT or REFERENCE]['ms_per_step']
    for name, r in by_shape.items():
      print(f'{setting:22} {name:54} {r["forward_mflops_per_image"]:6.1f} '
            f'{r["ms_per_step"]:8.0f} {r["ms_per_step"] / base:8.2f}x '
            f'{r["ms_per_step"] / default:8.2f}x '
            f'{100 * r["peak_fraction"]:6.1f}%')
  results['shapes'] = SHAPES
  onednn.save(results, args.output)
  return 0


if __name__ == '__main__':
  sys.exit(main())
