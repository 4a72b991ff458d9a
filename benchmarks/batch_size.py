"""Training throughput of the default CNN by batch size, side by side.

  .venv/bin/python benchmarks/batch_size.py [--steps 12] [--rounds 2]

Issue 10 asks for the batch size to be chosen by measurement. Each oneDNN
setting runs in its own process (TF reads the variables at import): oneDNN
on, as `fmnist run` trains, and on with ONEDNN_MAX_CPU_ISA=AVX2 (the kernels
an AVX2-only CPU gets). Each process times training steps inside `fit` of
the default model (`ModelConfig()`, augmentation on; see
onednn.time_training) on in-memory random data for every
batch size; the best of `--rounds` is kept, since other load only slows a
run down. Throughput is one half of the choice: a larger batch takes fewer
steps per epoch, which at a fixed epoch budget can cost accuracy
(`benchmarks/recipes.py --model-param batch_size=N` measures that on eval).
Results: benchmarks/results/batch_size.json.
"""

import os
import sys

import onednn  # benchmarks/onednn.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZES = (64, 128, 256, 512)
SETTINGS = {k: v for k, v in onednn.SETTINGS.items() if k != 'oneDNN off'}


def child(steps: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, REPO)
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from models.config import ModelConfig  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  out = {}
  for batch in BATCH_SIZES:
    m = model_lib.build_model(ModelConfig(batch_size=batch))
    out[str(batch)] = onednn.time_training(m, batch, steps, rng)
  return out


def main(argv=None) -> int:
  measured = onednn.child_or_measure(__file__, __doc__, 'batch_size.json',
                                     SETTINGS, child, argv)
  if measured is None:
    return 0
  args, results = measured
  print(f'\n{"":22} {"batch":>6} {"ms/step":>8} {"img/s":>7} {"vs 128":>7} '
        f'{"peak %":>7}')
  for name, by_batch in results.items():
    base = by_batch['128']['images_per_s']
    for batch, r in by_batch.items():
      print(f'{name:22} {batch:>6} {r["ms_per_step"]:8.0f} '
            f'{r["images_per_s"]:7.0f} {r["images_per_s"] / base:6.2f}x '
            f'{100 * r["peak_fraction"]:6.1f}%')
  onednn.save(results, args.output)
  return 0


if __name__ == '__main__':
  sys.exit(main())
