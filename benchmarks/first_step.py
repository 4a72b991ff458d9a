"""What the first training step costs, with and without AutoGraph rewriting Keras.

  .venv/bin/python benchmarks/first_step.py [--rounds 3]

Every epoch-1 of the Trainer took ~20 s longer than later ones. Most of it
was tracing: TF 2.16's AutoGraph rewrites every function of the `tf_keras`
package it meets (it exempts `tensorflow` and `keras`, not `tf_keras`), so the
first step transpiled ~350 of Keras' internal functions before computing
anything. `models.runtime.keras_code_as_written` exempts `tf_keras`, and
`build_model` applies it. This builds the default CNN in a fresh process per
setting (AutoGraph keeps a per-process cache, so only a new process shows
the cost a Trainer pays), alternating for `--rounds`, and times: the first
training step (tracing included), a second step, the first `evaluate` (its
own trace) and a short `fit` with a partial last batch (one more trace).
Medians printed. Results: benchmarks/results/first_step.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import hardware  # benchmarks/hardware.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {'Keras rewritten by AutoGraph (TF 2.16 default)': False,
         'Keras as written (the default now)': True}
PARTS = ('first step', 'second step', 'first evaluate', 'fit, partial batch')


def child(as_written: bool) -> dict:
  """Times the first steps of a fresh default model; runs in its own process."""
  sys.path.insert(0, REPO)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from models import runtime  # pylint: disable=g-import-not-at-top
  from models.config import ModelConfig  # pylint: disable=g-import-not-at-top
  if not as_written:
    runtime.keras_code_as_written = lambda: None  # what TF 2.16 does alone
  rng = np.random.default_rng(0)
  x = rng.normal(size=(512, 784)).astype(np.float32)
  y = rng.integers(0, 10, len(x))
  model = model_lib.build_model(ModelConfig())
  times = {}

  def timed(part, fn):
    start = time.perf_counter()
    fn()
    times[part] = time.perf_counter() - start

  timed('first step', lambda: model.train_on_batch(x[:128], y[:128]))
  timed('second step', lambda: model.train_on_batch(x[128:256], y[128:256]))
  timed('first evaluate', lambda: model.evaluate(x, y, verbose=0))
  timed('fit, partial batch',
        lambda: model.fit(x[:200], y[:200], batch_size=128, verbose=0))
  return times


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--output', default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'results', 'first_step.json'))
  parser.add_argument('--child', choices=('0', '1'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child is not None:
    print(json.dumps(child(args.child == '1')))
    return 0
  print(f'hardware: {hardware.describe()}', flush=True)
  runs = {mode: [] for mode in MODES}
  for round_ in range(args.rounds):
    for mode, as_written in MODES.items():
      out = subprocess.run(
          [sys.executable, os.path.abspath(__file__), '--child',
           '1' if as_written else '0'],
          capture_output=True, text=True, check=True,
          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
      times = json.loads(out.stdout.strip().splitlines()[-1])
      runs[mode].append(times)
      print(f'round {round_ + 1}, {mode}: ' + ', '.join(
          f'{p} {times[p]:.2f} s' for p in PARTS), flush=True)
  medians = {mode: {p: statistics.median(r[p] for r in rs) for p in PARTS}
             for mode, rs in runs.items()}
  print(f'\n{"medians (s)":48}' + ''.join(f'{p:>20}' for p in PARTS))
  for mode, m in medians.items():
    print(f'{mode:48}' + ''.join(f'{m[p]:20.2f}' for p in PARTS))
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, 'w') as f:
    json.dump({'hardware': hardware.describe(), 'rounds': args.rounds,
               'medians': medians, 'runs': runs}, f, indent=1)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
