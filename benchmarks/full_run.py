"""The full-data local run, measured: accuracy, epochs, per-component times.

Runs the main job (`fmnist run`) in a fresh home, so nothing is cached, then
prints the figures the README records, as Markdown. Takes ~25 minutes here.

  .venv/bin/python benchmarks/full_run.py [--home /tmp/fmnist-bench] [--epochs N]
"""

import argparse
import os
import shutil
import sys
import tempfile

from fmnist import cli
from models import features
from pipeline import configs
from pipeline import summary


def markdown(s: summary.RunSummary) -> str:
  o = s.metrics.overall
  total, train = s.total_seconds, s.seconds_of('Trainer')
  lines = [
      f'Test accuracy **{o["accuracy"]:.4f}** (TFMA, {o["example_count"]:.0f} '
      f'test images), loss {o["loss"]:.4f}, macro precision '
      f'{o["macro_precision"]:.4f}, recall {o["macro_recall"]:.4f}, F1 '
      f'{o["macro_f1_score"]:.4f}; {s.epochs} epochs; blessed: {s.blessed}.',
      '', '| class | precision | recall | F1 |', '| --- | --- | --- | --- |']
  for c, m in s.metrics.per_class.items():
    lines.append(f'| {features.CLASS_NAMES[c]} | {m["precision"]:.4f} | '
                 f'{m["recall"]:.4f} | {m["f1_score"]:.4f} |')
  lines += ['', '| component | seconds |', '| --- | --- |']
  lines += [f'| {c.node_id} | {c.seconds:.1f} |' for c in s.components]
  lines += [f'| **total** | **{total:.0f}** |', '',
            f'Training is {100 * train / total:.0f} % of the wall time '
            f'({train / max(s.epochs, 1):.0f} s per epoch).']
  return '\n'.join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--home', default=None)
  parser.add_argument('--epochs', default=None)
  args = parser.parse_args()
  home = args.home or tempfile.mkdtemp(prefix='fmnist-bench-')
  if os.path.exists(os.path.join(home, 'metadata.sqlite')):
    sys.exit(f'error: {home} already has runs; give a fresh --home')
  argv = ['run', '--home', home]
  if args.epochs:
    argv += ['--epochs', args.epochs]
  status = cli.main(argv)
  if status:
    return status
  s = summary.summarize(configs.PipelineConfig.from_home(home))
  print(markdown(s))
  if not args.home:
    shutil.rmtree(home, ignore_errors=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
