"""The Trainer's input, streamed from TFRecords vs. read into memory, side by side.

  .venv/bin/python benchmarks/trainer_input.py --home work [--epochs 2] [--rounds 3]

Issue 10 asks to keep the transformed training data in memory if that
measurably helps. This runs the Trainer's own `run_fn` (models/trainer.py) on
the newest Transform output of a finished run under `--home`, once with
`in_memory=false` (TFX's tfxio stream, 10k shuffle buffer, as before) and once
with `in_memory=true` (the default), each in its own process, alternating for
`--rounds`. It splits each run's wall time into: before training (reading,
building the model), the epochs (first and later ones), the gap between the
last epoch's end and `fit` returning, and the export. Every round is kept and
the median printed, not the best: the stall this found (28-35 s before `fit`
returned, tf.data's autotuning; README "Trainer input") came in some runs and
not in others, so the best round would have hidden it.
Results: benchmarks/results/trainer_input.json.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import hardware  # benchmarks/hardware.py
import onednn  # benchmarks/onednn.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {'streamed': False, 'in memory': True}


def _newest(pattern: str) -> str:
  found = sorted(glob.glob(pattern), key=lambda p: int(os.path.basename(p)))
  if not found:
    sys.exit(f'error: nothing matches {pattern}; run `fmnist run --home` first')
  return found[-1]


def child(home: str, epochs: int, in_memory: bool) -> dict:
  """Times one `run_fn` call; runs in its own process."""
  sys.path.insert(0, REPO)
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from tfx.components.util import tfxio_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  from models import features  # pylint: disable=g-import-not-at-top
  from models import trainer  # pylint: disable=g-import-not-at-top

  examples = standard_artifacts.Examples()
  examples.uri = _newest(os.path.join(home, 'tfx', 'Transform',
                                      'transformed_examples', '*'))
  examples.split_names = artifact_utils.encode_split_names(
      [features.TRAIN_SPLIT, features.EVAL_SPLIT])
  marks = {}

  class Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
      marks['train_begin'] = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
      marks.setdefault('epoch_ends', []).append(time.perf_counter())

  export = trainer.signatures.export

  def timed_export(*args, **kwargs):
    marks['export_begin'] = time.perf_counter()
    return export(*args, **kwargs)

  # The real run_fn, with a clock where its tracking callbacks would go.
  trainer.tracking.callbacks = lambda *args, **kwargs: [Clock()]
  trainer.signatures.export = timed_export
  work = tempfile.mkdtemp(prefix='trainer-input-')
  split = lambda name: [os.path.join(examples.uri, f'Split-{name}', '*')]
  fn_args = tfx.components.FnArgs(
      train_files=split(features.TRAIN_SPLIT),
      eval_files=split(features.EVAL_SPLIT),
      transform_output=_newest(os.path.join(home, 'tfx', 'Transform',
                                            'transform_graph', '*')),
      serving_model_dir=os.path.join(work, 'serving'),
      model_run_dir=os.path.join(work, 'run'),
      data_accessor=tfx.components.DataAccessor(
          tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
              [examples], []),
          record_batch_factory=None, data_view_decode_fn=None),
      custom_config={trainer.MODEL_CONFIG_KEY: {'epochs': epochs,
                                                'in_memory': in_memory}})
  start = time.perf_counter()
  trainer.run_fn(fn_args)
  end = time.perf_counter()
  ends = marks['epoch_ends']
  return {
      'total_s': end - start,
      'before_training_s': marks['train_begin'] - start,
      'first_epoch_s': ends[0] - marks['train_begin'],
      'later_epoch_s': (ends[-1] - ends[0]) / max(1, len(ends) - 1),
      'after_last_epoch_until_fit_returns_s': marks['export_begin'] - ends[-1],
      'export_s': end - marks['export_begin'],
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--home', required=True,
                 help='a home with a finished `fmnist run` (its Transform '
                      'output)')
  p.add_argument('--epochs', type=int, default=2)
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--child', choices=list(MODES), help=argparse.SUPPRESS)
  p.add_argument('--output', default=os.path.join(
      REPO, 'benchmarks', 'results', 'trainer_input.json'))
  args = p.parse_args(argv)
  if args.child:
    print('RESULT ' + json.dumps(child(args.home, args.epochs,
                                       MODES[args.child])))
    return 0
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # as `fmnist run` trains
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  machine = hardware.describe()
  print(f'hardware: {machine}', flush=True)
  results = {}
  for round_ in range(args.rounds):
    for mode in MODES:
      print(f'round {round_ + 1}: {mode} ...', flush=True)
      proc = subprocess.run(
          [sys.executable, __file__, '--home', args.home, '--epochs',
           str(args.epochs), '--child', mode],
          env=env, capture_output=True, text=True, check=True)
      line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
      measured = json.loads(line[0][len('RESULT '):])
      print(f'  {json.dumps({k: round(v, 1) for k, v in measured.items()})}',
            flush=True)
      results.setdefault(mode, []).append(measured)
  medians = {mode: {key: statistics.median(r[key] for r in rounds)
                    for key in rounds[0]} for mode, rounds in results.items()}
  print(f'\n{"":10} {"total":>6} {"before":>7} {"epoch 1":>8} {"later":>6} '
        f'{"gap":>6} {"export":>7}  (seconds, median of {args.rounds})')
  for mode, r in medians.items():
    print(f'{mode:10} {r["total_s"]:6.1f} {r["before_training_s"]:7.1f} '
          f'{r["first_epoch_s"]:8.1f} {r["later_epoch_s"]:6.1f} '
          f'{r["after_last_epoch_until_fit_returns_s"]:6.1f} '
          f'{r["export_s"]:7.1f}')
  onednn.save({'epochs': args.epochs, 'medians': medians,
               'rounds': results}, args.output)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
