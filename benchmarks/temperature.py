"""Temperature scaling of a pushed model, measured on test: what it does to
calibration, and that it leaves every predicted class alone.

Serves the newest pushed model of a home (`serving_default`, raw pixels, the
exported TTA), fits one temperature on the span's `eval` split the way the
Trainer does (`models/temperature.py`), and prints test accuracy, negative
log-likelihood, expected calibration error (15 equal-width bins, as the
Evaluator's ECE metric) and mean top probability before and after. Writes a
reliability diagram (`--png`) and the figures (`--output`). A model exported
with its own temperature should fit ~1 here.

  .venv/bin/python benchmarks/temperature.py --home /work/home-s1 \
      --output benchmarks/results/temperature-DATE.json --png benchmarks/results/temperature-DATE.png
"""

import argparse
import json
import os

import matplotlib
matplotlib.use('Agg')  # files only, no display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

import hardware  # benchmarks/hardware.py
from models import features
from models import temperature
from pipeline import configs
from pipeline import ingest
from pipeline import pusher
from pipeline import reference

BINS = 15


def reliability(probabilities: np.ndarray, labels: np.ndarray):
  """Per equal-width bin of the top probability: (share, confidence,
  accuracy), and the ECE they add up to."""
  top = probabilities.max(axis=1)
  right = probabilities.argmax(axis=1) == labels
  which = np.minimum((top * BINS).astype(int), BINS - 1)
  rows = [(np.mean(which == b), top[which == b].mean(), right[which == b].mean())
          for b in range(BINS) if np.any(which == b)]
  return rows, float(sum(s * abs(c - a) for s, c, a in rows))


def figures(probabilities: np.ndarray, labels: np.ndarray) -> dict:
  rows, ece = reliability(probabilities, labels)
  return {'accuracy': float(np.mean(probabilities.argmax(1) == labels)),
          'nll': temperature.negative_log_likelihood(probabilities, labels),
          'ece': ece, 'mean_top_probability': float(probabilities.max(1).mean()),
          'bins': [[float(v) for v in r] for r in rows]}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--home', required=True)
  p.add_argument('--output', default=None)
  p.add_argument('--png', default=None)
  args = p.parse_args(argv)
  cfg = configs.PipelineConfig.from_home(args.home)
  versions = pusher.pushed_versions(cfg.serving_dir)
  if not versions:
    p.error(f'{cfg.serving_dir}: no pushed model')
  model_dir = os.path.join(cfg.serving_dir, str(versions[-1]))
  span = ingest.existing_spans(cfg.data_root)[-1]
  split = {s: ingest.read_span_split(os.path.join(cfg.data_root,
                                                  f'span-{span}', s))
           for s in (features.EVAL_SPLIT, features.TEST_SPLIT)}
  print(f'hardware: {hardware.describe()}\nmodel {model_dir}, span {span}',
        flush=True)
  serve = reference.serving_function(model_dir)
  served = {s: reference.predict(serve, x.reshape(len(x), -1)).astype(
      np.float64) for s, (x, _) in split.items()}
  eval_y, test_y = split[features.EVAL_SPLIT][1], split[features.TEST_SPLIT][1]
  t = temperature.fit(served[features.EVAL_SPLIT], eval_y)
  rescaled = temperature.rescale(served[features.TEST_SPLIT], t)
  before = figures(served[features.TEST_SPLIT], test_y)
  after = figures(rescaled, test_y)
  results = {'hardware': hardware.describe(), 'model': model_dir,
             'temperature_fitted_on_eval': t, 'eval_images': len(eval_y),
             'test_before': before, 'test_after': after}
  print(f'temperature fitted on {len(eval_y)} eval images: {t:.3f}')
  for name, f in (('as served', before), (f'T = {t:.3f}', after)):
    print(f'  test, {name:12} accuracy {f["accuracy"]:.4f}  NLL {f["nll"]:.4f}'
          f'  ECE {f["ece"]:.4f}  mean top probability '
          f'{f["mean_top_probability"]:.3f}')
  if args.output:
    with open(args.output, 'w') as fh:
      json.dump(results, fh, indent=1)
  if args.png:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color='grey', lw=1, ls='--', label='calibrated')
    for name, f, style in (('as served', before, 'o-'),
                           (f'temperature {t:.2f}', after, 's-')):
      _, conf, acc = zip(*f['bins'])
      ax.plot(conf, acc, style, label=f'{name} (ECE {f["ece"]:.3f})')
    ax.set_xlabel('confidence (top probability, bin mean)')
    ax.set_ylabel('accuracy in the bin')
    ax.set_title(f'Reliability on test ({len(test_y)} images)')
    ax.legend(loc='upper left')
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
