"""The full-data local run, measured: accuracy, epochs, speed, per-component times.

Runs the main job (`fmnist run`, oneDNN on as `fmnist run` sets it) in a fresh
home, so nothing is cached, then prints what the README records: the hardware,
test accuracy with its 95 % confidence interval, per-class metrics, epochs,
seconds per epoch, training images/s and their share of the machine's FP32
peak, and the wall time of every component. Each run is also kept in
`benchmarks/results/full_run.json` under `--label`, and `--table` prints those
runs side by side (the ablation table of issue 10: what each recipe change
bought in accuracy and minutes; compare rows measured on the same machine).

A retraining run is measured on a home that has a blessed model: `--retrain`
ingests the source as that home's next span first (`--train-limit` slices
it, for the first run too), so the Trainer warm-starts when the recipe is the
same (models/warm_start.py); how it started is recorded with the figures.

  .venv/bin/python benchmarks/full_run.py [--label NAME] [--model-param K=V ...] [--epochs N]
  .venv/bin/python benchmarks/full_run.py --home H --train-limit 30000 --label base
  .venv/bin/python benchmarks/full_run.py --home H --retrain --label retrain
  .venv/bin/python benchmarks/full_run.py --table
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

# oneDNN on, as `fmnist run` trains, and before anything below imports
# TensorFlow: set after the import, TensorFlow reports oneDNN on
# (IsMklEnabled() is True) but trains as slowly as with it off (a step of the
# default 240 vs. 140 ms on the 2-core AVX2-only EPYC; models/runtime.py).
# Until 2026-12-07 this line stood in main(), after the imports, and the run
# of that day measured the half-on state: 116 s per epoch instead of ~64.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

from statsmodels.stats import proportion

import hardware  # benchmarks/hardware.py
import onednn  # benchmarks/onednn.py: forward_flops, peak_flops
from fmnist import cli
from models import features
from models import temperature
from pipeline import configs
from pipeline import summary

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results',
                       'full_run.json')


def markdown(s: summary.RunSummary, figures: dict) -> str:
  o = s.metrics.overall
  total, train = s.total_seconds, s.seconds_of('Trainer')
  low, high = figures['accuracy_ci95']
  lines = [
      f'Test accuracy **{o["accuracy"]:.4f}** (95 % CI {low:.4f}–{high:.4f}; '
      f'TFMA, {o["example_count"]:.0f} test images), loss {o["loss"]:.4f}, '
      f'macro precision {o["macro_precision"]:.4f}, recall '
      f'{o["macro_recall"]:.4f}, F1 {o["macro_f1_score"]:.4f}, ECE '
      f'{o["ece"]:.4f}; {s.epochs} '
      f'epochs; blessed: {s.blessed}'
      + (f'; {s.warm_start["reason"]}' if s.warm_start else '')
      + (f'; {temperature.describe(s.temperature)}' if s.temperature else '')
      + '.', '',
      f'Training: {figures["seconds_per_epoch"]:.0f} s per epoch, '
      f'{figures["images_per_s"]:.0f} images/s, '
      f'{100 * figures["peak_fraction"]:.0f} % of an estimated '
      f'{figures["peak_gflops"]:.0f} GFLOP/s FP32 peak '
      f'({figures["forward_mflop"]:.0f} MFLOP forward per image, a training '
      'step ~3x that).',
      '', '| class | precision | recall | F1 |', '| --- | --- | --- | --- |']
  for c, m in s.metrics.per_class.items():
    lines.append(f'| {features.CLASS_NAMES[c]} | {m["precision"]:.4f} | '
                 f'{m["recall"]:.4f} | {m["f1_score"]:.4f} |')
  lines += ['', '| component | seconds |', '| --- | --- |']
  lines += [f'| {c.node_id} | {c.seconds:.1f} |' for c in s.components]
  lines += [f'| **total** | **{total:.0f}** ({total / 60:.1f} min) |', '',
            f'Training is {100 * train / total:.0f} % of the wall time.']
  return '\n'.join(lines)


def figures_of(s: summary.RunSummary, cfg: configs.PipelineConfig) -> dict:
  """Speed and accuracy figures of a finished run."""
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  from pipeline import ingest  # pylint: disable=g-import-not-at-top
  (span,) = ingest.existing_spans(cfg.data_root)[-1:]
  train_images = len(ingest.read_span_split(os.path.join(
      cfg.data_root, f'span-{span}', features.TRAIN_SPLIT))[1])
  train = s.seconds_of('Trainer')
  images_per_s = train_images * max(s.epochs, 1) / train
  flops = onednn.forward_flops(model_lib.build_model(cfg.model))
  peak = onednn.peak_flops()
  o = s.metrics.overall
  n = int(round(o['example_count']))
  low, high = proportion.proportion_confint(int(round(o['accuracy'] * n)), n,
                                            alpha=0.05, method='beta')
  return {
      'accuracy': o['accuracy'], 'accuracy_ci95': [low, high],
      # Calibration moves with recipe changes such as label smoothing.
      'loss': o['loss'], 'ece': o['ece'],
      'test_images': n, 'epochs': s.epochs, 'train_images': train_images,
      'seconds_per_epoch': train / max(s.epochs, 1),
      'images_per_s': images_per_s, 'forward_mflop': flops / 1e6,
      'peak_gflops': peak / 1e9, 'peak_fraction': 3 * flops * images_per_s /
                                                  peak,
      'trainer_seconds': train, 'total_seconds': s.total_seconds,
      'components': {c.node_id: round(c.seconds, 1) for c in s.components},
      'blessed': s.blessed,
      # The served temperature's fit on `eval` (None when it is off).
      'temperature': s.temperature,
      # From scratch or from the last blessed model, and why.
      'warm_start': s.warm_start, 'time_budget': s.time_budget}


def table(results: dict) -> str:
  lines = ['| run | hardware | epochs | s/epoch | images/s | % peak | test '
           'accuracy (95 % CI) | total min |',
           '| --- | --- | --- | --- | --- | --- | --- | --- |']
  for label, r in results.items():
    low, high = r['accuracy_ci95']
    lines.append(
        f'| {label} | {r["hardware"]} | {r["epochs"]} | '
        f'{r["seconds_per_epoch"]:.0f} | {r["images_per_s"]:.0f} | '
        f'{100 * r["peak_fraction"]:.0f} | {r["accuracy"]:.4f} '
        f'({low:.4f}–{high:.4f}) | {r["total_seconds"] / 60:.1f} |')
  return '\n'.join(lines)


def _load(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--home', default=None)
  parser.add_argument('--epochs', default=None)
  parser.add_argument('--model-param', action='append', default=[],
                      help='KEY=VALUE passed to `fmnist run` (repeatable)')
  parser.add_argument('--train-limit', default=None,
                      help='ingest only this many official training images')
  parser.add_argument('--retrain', action='store_true',
                      help='HOME has runs: ingest its next span, then run')
  parser.add_argument('--label', default='default recipe')
  parser.add_argument('--results', default=RESULTS)
  parser.add_argument('--table', action='store_true',
                      help='print the kept runs side by side and exit')
  args = parser.parse_args()
  if args.table:
    print(table(_load(args.results)))
    return 0
  home = args.home or tempfile.mkdtemp(prefix='fmnist-bench-')
  has_runs = os.path.exists(os.path.join(home, 'metadata.sqlite'))
  if has_runs != args.retrain:
    sys.exit(f'error: {home} already has runs; give a fresh --home' if
             has_runs else f'error: --retrain needs a home with runs: {home}')
  limit = ['--train-limit', args.train_limit] if args.train_limit else []
  if args.retrain:
    # The next span, written before the clock starts (`fmnist run` ingests
    # only into an empty home).
    status = cli.main(['ingest', '--home', home] + limit)
    if status:
      return status
  argv = ['run', '--home', home] + ([] if args.retrain else limit)
  if args.epochs:
    argv += ['--epochs', args.epochs]
  for pair in args.model_param:
    argv += ['--model-param', pair]
  machine = hardware.describe()
  print(f'hardware: {machine}', flush=True)
  cpu = hardware.CpuShare()
  status = cli.main(argv)
  cpu_shares = cpu.shares()
  if status:
    return status
  from fmnist import options  # pylint: disable=g-import-not-at-top
  cfg = configs.PipelineConfig.from_home(home, model=options.model_config(
      argparse.Namespace(model_param=args.model_param, epochs=args.epochs and
                         int(args.epochs))))
  s = summary.summarize(cfg)
  figures = figures_of(s, cfg)
  print(f'hardware: {machine} (at the start); load at the end '
        f'{os.getloadavg()[0]:.2f}; CPU time during the run: '
        f'{hardware.describe_shares(cpu_shares)}')
  print(markdown(s, figures))
  results = _load(args.results)
  results[args.label] = dict(figures, hardware=machine,
                             model_params=args.model_param,
                             load_at_end=os.getloadavg()[0],
                             cpu_shares=cpu_shares)
  os.makedirs(os.path.dirname(args.results), exist_ok=True)
  with open(args.results, 'w') as f:
    json.dump(results, f, indent=1)
  print('\n' + table(results))
  if not args.home:
    shutil.rmtree(home, ignore_errors=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
