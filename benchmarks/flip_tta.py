"""Does horizontal-flip test-time augmentation pay? Measured on `eval`.

Takes a pushed model (the newest version under HOME/serving_model) and the
eval split of the span it was trained on, and compares the model's accuracy on
those held-out images with the average of its probabilities on the image and
its mirror image — what a flip-TTA serving signature would answer. Also times
batch-1 and batch-64 calls of `serving_default` (a TTA signature makes two),
which is what the proxy would pay. Chosen on `eval`, never on `test`.

  .venv/bin/python benchmarks/flip_tta.py --home work
"""

import argparse
import os
import time

import numpy as np

import hardware  # benchmarks/hardware.py
from models import features
from pipeline import ingest
from pipeline import pusher
from pipeline import reference


def _latency_ms(serve, pixels: np.ndarray, batch: int, rounds: int = 50) -> float:
  x = pixels[:batch]
  reference.predict(serve, x)  # warm-up
  start = time.perf_counter()
  for _ in range(rounds):
    reference.predict(serve, x)
  return 1000 * (time.perf_counter() - start) / rounds


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--home', required=True)
  parser.add_argument('--span', type=int, default=None)
  args = parser.parse_args()
  serving = os.path.join(args.home, 'serving_model')
  version = str(pusher.pushed_versions(serving)[-1])
  span = args.span or ingest.existing_spans(os.path.join(args.home, 'data'))[-1]
  images, labels = ingest.read_span_split(os.path.join(
      args.home, 'data', f'span-{span}', features.EVAL_SPLIT))
  print(f'hardware: {hardware.describe()}; model {version}, '
        f'{len(images)} eval images of span {span}')
  serve = reference.serving_function(os.path.join(serving, version))
  flat = images.reshape(len(images), -1)
  mirrored = images[:, :, ::-1].reshape(len(images), -1)
  plain = reference.predict(serve, flat)
  flipped = reference.predict(serve, mirrored)
  acc = (plain.argmax(1) == labels).mean()
  tta = ((plain + flipped).argmax(1) == labels).mean()
  changed = int(((plain + flipped).argmax(1) != plain.argmax(1)).sum())
  print(f'eval accuracy: plain {acc:.4f}, flip TTA {tta:.4f} '
        f'({100 * (tta - acc):+.2f} points; {changed} answers changed)')
  for batch in (1, 64):
    ms = _latency_ms(serve, flat, batch)
    print(f'serving_default batch {batch}: {ms:.1f} ms per call (a TTA '
          f'signature runs the network twice: ~{2 * ms:.1f} ms)')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
