"""oneDNN on vs. off for training and for serving, side by side in one run.

  .venv/bin/python benchmarks/onednn.py [--steps 12]

TF_ENABLE_ONEDNN_OPTS only takes effect before TensorFlow is imported, so
each setting runs in its own process: oneDNN off, on, and on with
ONEDNN_MAX_CPU_ISA=AVX2 (how oneDNN behaves on an AVX2-only CPU such as the
2-core AMD EPYC of issue 10, where TF 2.16 leaves it off by default). Each
process times, on in-memory random data:
- a training step (batch 128, augmentation on) of the seeds' CNN (two convs
  per block) and of the default (one), as ms/step and images/s, and as a fraction of
  the machine's FP32 peak (FLOPs counted from the layer shapes; a training
  step is ~3x the forward FLOPs; peak = cores x MHz x 32 FLOP/cycle, two
  256-bit FMA pipes, which is also what Zen 4 does with AVX-512);
- inference of the seeds' CNN at batch 1 and batch 64, what the proxy runs
  (`benchmarks/flip_tta.py` times the default's exported signature).
Why it matters: `fmnist pipeline run` / `fmnist run` turn oneDNN on for their
process (the Trainer runs in it) and `fmnist serve` turns it off, unless the
variable is already set (see models/runtime.py).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, Optional

import hardware  # benchmarks/hardware.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {
    'oneDNN off': {'TF_ENABLE_ONEDNN_OPTS': '0'},
    'oneDNN on': {'TF_ENABLE_ONEDNN_OPTS': '1'},
    'oneDNN on, AVX2 only': {'TF_ENABLE_ONEDNN_OPTS': '1',
                             'ONEDNN_MAX_CPU_ISA': 'AVX2'},
}


def forward_flops(model, sides: Optional[Dict[int, int]] = None) -> int:
  """Multiply-adds x 2 of the conv and dense layers, per image; with
  `sides`, each conv whose map is h x w as built is counted at
  sides[h] x sides[w] (the same network on a smaller input)."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  flops = 0
  for layer in model.layers:
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D)):
      _, h, w, c_out = layer.output.shape
      if sides:
        h, w = sides[h], sides[w]
      kh, kw = layer.kernel_size
      c_in = layer.input.shape[-1]
      if isinstance(layer, keras.layers.SeparableConv2D):
        # A depthwise kh x kw conv per input channel, then a 1x1 conv.
        depth = c_in * layer.depth_multiplier
        flops += 2 * h * w * (kh * kw * depth + depth * c_out)
      else:
        flops += 2 * h * w * c_out * kh * kw * c_in
    elif isinstance(layer, keras.layers.Dense):
      flops += 2 * layer.input.shape[-1] * layer.units
  return flops


def peak_flops() -> float:
  """Cores x current MHz x 32 FP32 FLOP/cycle."""
  mhz = []
  with open('/proc/cpuinfo') as f:
    for line in f:
      if line.startswith('cpu MHz'):
        mhz.append(float(line.split(':')[1]))
  return os.cpu_count() * (max(mhz) if mhz else 2000.0) * 1e6 * 32


def time_training(model, batch: int, steps: int, rng) -> dict:
  """ms per training step inside `fit` on random in-memory data (the median
  of `steps` steps after 3 warm-up ones), images/s, and the fraction of FP32
  peak (a step ~3x forward).

  Timed inside `fit`, as the Trainer trains, not with `train_on_batch`,
  which waits for each step's results before Python starts the next one:
  that added ~30 ms to a 77 ms step of the default at batch 128 (AVX2-only
  kernels, AMD EPYC), little at batch 512, and so made larger batches and
  larger shapes look cheaper relative to the default than they train."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  warmup = 3
  n = batch * (warmup + steps + 1)
  x = rng.normal(size=(n, 784)).astype(np.float32)
  y = rng.integers(0, 10, n)
  ends = []
  timer = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda *_: ends.append(time.perf_counter()))
  model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
            callbacks=[timer])
  step = float(np.median(np.diff(ends[warmup:])))
  flops = forward_flops(model)
  return {'ms_per_step': step * 1000, 'images_per_s': batch / step,
          'peak_fraction': 3 * flops * batch / step / peak_flops(),
          'forward_mflops_per_image': flops / 1e6}

def child(steps: int) -> dict:
  """Runs in a process with the setting's environment."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, REPO)
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from models import config  # pylint: disable=g-import-not-at-top
  from models.config import ModelConfig  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  out = {'mkl_enabled': bool(_pywrap_util_port.IsMklEnabled())}
  for name, params in (('seeds CNN', config.SEEDS_ARCHITECTURE),
                       ('default CNN', {})):
    m = model_lib.build_model(ModelConfig(**params))
    out[f'train {name}'] = time_training(m, 128, steps, rng)
    if name == 'seeds CNN':
      predict = tf.function(lambda t, m=m: m(t, training=False))
      for batch, calls in ((1, 200), (64, 30)):
        t = tf.constant(rng.normal(size=(batch, 784)).astype(np.float32))
        for _ in range(5):
          predict(t)
        start = time.perf_counter()
        for _ in range(calls):
          predict(t).numpy()
        out[f'infer batch {batch} ms'] = (time.perf_counter() - start
                                          ) / calls * 1000
  return out


def _best(a, b):
  """The faster of two measurements of the same setting, per figure."""
  if a is None:
    return b
  best = dict(b)
  for key, value in b.items():
    if key.startswith('infer'):
      best[key] = min(a[key], value)
    elif key.startswith('train'):
      best[key] = min(a[key], value, key=lambda r: r['ms_per_step'])
  return best


def parse_args(doc: str, output_name: str, argv=None) -> argparse.Namespace:
  """The flags this benchmark and benchmarks/batch_size.py share."""
  p = argparse.ArgumentParser(description=doc.split('\n\n')[0])
  p.add_argument('--steps', type=int, default=12)
  p.add_argument('--rounds', type=int, default=2,
                 help='settings are run in turn this many times; the best '
                      'time of each is kept (other load only slows down)')
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--output', default=os.path.join(REPO, 'benchmarks',
                                                  'results', output_name))
  return p.parse_args(argv)


def measure_in_processes(script: str, settings, steps: int, rounds: int,
                         keep_best) -> dict:
  """Runs `script --child` once per setting and round, each in a process
  with the setting's environment (TF reads it at import), and merges the
  rounds with `keep_best(earlier or None, new)`."""
  results = {}
  for round_ in range(rounds):
    for name, env in settings.items():
      print(f'round {round_ + 1}: {name} ...', flush=True)
      proc = subprocess.run(
          [sys.executable, script, '--child', '--steps', str(steps)],
          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **env),
          capture_output=True, text=True, check=True)
      line = [l for l in proc.stdout.splitlines()
              if l.startswith('RESULT ')][0]
      results[name] = keep_best(results.get(name),
                                json.loads(line[len('RESULT '):]))
  return results


def fastest_per_key(earlier, measured):
  """Per key (a batch size, a shape), the faster of two rounds' timings."""
  if earlier is None:
    return measured
  return {key: min(earlier[key], r, key=lambda x: x['ms_per_step'])
          for key, r in measured.items()}


def child_or_measure(script: str, doc: str, output_name: str, settings,
                     child, argv=None, keep_best=fastest_per_key):
  """The shared entry of the per-setting timing benchmarks: in a `--child`
  process prints `child(steps)`'s timings and returns None; otherwise runs
  one child per setting and round and returns (args, the rounds merged by
  `keep_best`)."""
  args = parse_args(doc, output_name, argv)
  if args.child:
    print('RESULT ' + json.dumps(child(args.steps)))
    return None
  print(f'hardware: {hardware.describe()}', flush=True)
  return args, measure_in_processes(script, settings, args.steps, args.rounds,
                                    keep_best)


def save(results: dict, path: str) -> None:
  """The results with the hardware they were measured on, as JSON."""
  results['hardware'] = hardware.describe()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(results, f, indent=1)


def main(argv=None) -> int:
  measured = child_or_measure(__file__, __doc__, 'onednn.json', SETTINGS,
                              child, argv, keep_best=_best)
  if measured is None:
    return 0
  args, results = measured
  off = results['oneDNN off']
  print(f'\n{"":22} {"MKL":>4} {"train ms/step":>14} {"img/s":>7} '
        f'{"peak %":>7} {"default ms":>10} {"infer b1 ms":>12} {"b64 ms":>7}')
  for name, r in results.items():
    d, s = r['train seeds CNN'], r['train default CNN']
    print(f'{name:22} {str(r["mkl_enabled"]):>4} {d["ms_per_step"]:14.0f} '
          f'{d["images_per_s"]:7.0f} {100 * d["peak_fraction"]:6.1f}% '
          f'{s["ms_per_step"]:10.0f} {r["infer batch 1 ms"]:12.2f} '
          f'{r["infer batch 64 ms"]:7.1f}')
  for name, r in results.items():
    if r is not off:
      print(f'{name} / off: training x'
            f'{off["train seeds CNN"]["ms_per_step"] / r["train seeds CNN"]["ms_per_step"]:.2f} '
            f'faster, batch-1 inference x'
            f'{r["infer batch 1 ms"] / off["infer batch 1 ms"]:.2f} the time')
  print(f'seeds CNN: {off["train seeds CNN"]["forward_mflops_per_image"]:.0f}'
        f' MFLOP forward per image; FP32 peak assumed '
        f'{peak_flops() / 1e9:.0f} GFLOP/s')
  save(results, args.output)
  return 0


if __name__ == '__main__':
  sys.exit(main())
