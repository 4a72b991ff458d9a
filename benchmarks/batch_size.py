"""Training throughput of the default CNN by batch size, side by side.

  .venv/bin/python benchmarks/batch_size.py [--steps 12] [--rounds 2]

Issue 10 asks for the batch size to be chosen by measurement. Each oneDNN
setting runs in its own process (TF reads the variables at import): oneDNN
on, as `fmnist run` trains, and on with ONEDNN_MAX_CPU_ISA=AVX2 (the kernels
an AVX2-only CPU gets). Each process times `train_on_batch` of the default
model (`ModelConfig()`, augmentation on) on in-memory random data for every
batch size; the best of `--rounds` is kept, since other load only slows a
run down. Throughput is one half of the choice: a larger batch takes fewer
steps per epoch, which at a fixed epoch budget can cost accuracy
(`benchmarks/recipes.py --model-param batch_size=N` measures that on eval).
Results: benchmarks/results/batch_size.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import hardware  # benchmarks/hardware.py
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
    x = rng.normal(size=(batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    for _ in range(3):
      m.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
      m.train_on_batch(x, y)
    step = (time.perf_counter() - start) / steps
    out[str(batch)] = {
        'ms_per_step': step * 1000, 'images_per_s': batch / step,
        'peak_fraction': 3 * onednn.forward_flops(m) * batch / step /
                         onednn.peak_flops()}
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--steps', type=int, default=12)
  p.add_argument('--rounds', type=int, default=2)
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--output', default=os.path.join(REPO, 'benchmarks',
                                                  'results', 'batch_size.json'))
  args = p.parse_args(argv)
  if args.child:
    print('RESULT ' + json.dumps(child(args.steps)))
    return 0
  print(f'hardware: {hardware.describe()}', flush=True)
  results = {}
  for round_ in range(args.rounds):
    for name, env in SETTINGS.items():
      print(f'round {round_ + 1}: {name} ...', flush=True)
      proc = subprocess.run(
          [sys.executable, __file__, '--child', '--steps', str(args.steps)],
          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **env),
          capture_output=True, text=True, check=True)
      line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
      measured = json.loads(line[0][len('RESULT '):])
      best = results.setdefault(name, measured)
      for batch, r in measured.items():
        if r['ms_per_step'] < best[batch]['ms_per_step']:
          best[batch] = r
  print(f'\n{"":22} {"batch":>6} {"ms/step":>8} {"img/s":>7} {"vs 128":>7} '
        f'{"peak %":>7}')
  for name, by_batch in results.items():
    base = by_batch['128']['images_per_s']
    for batch, r in by_batch.items():
      print(f'{name:22} {batch:>6} {r["ms_per_step"]:8.0f} '
            f'{r["images_per_s"]:7.0f} {r["images_per_s"] / base:6.2f}x '
            f'{100 * r["peak_fraction"]:6.1f}%')
  results['hardware'] = hardware.describe()
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, 'w') as f:
    json.dump(results, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
