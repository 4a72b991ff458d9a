"""`fmnist compare`: two evaluated models side by side, with error bars."""

from fmnist import options
from pipeline import configs


def register(sub) -> None:
  p = sub.add_parser(
      'compare', help='compare two evaluated models (paired test, 95%% CIs, '
                      'HTML)',
      description='A and B are run ids (their candidate model and TFMA '
                  'EvalResult) or SavedModel directories. Default: the newest '
                  "run's candidate (B) against its baseline (A), else the two "
                  'newest evaluated runs. One run id: its candidate against '
                  'its baseline.')
  p.add_argument('a', nargs='?', default=None, metavar='RUN_OR_MODEL_A')
  p.add_argument('b', nargs='?', default=None, metavar='RUN_OR_MODEL_B')
  options.add_home(p)
  p.add_argument('--output', default=None,
                 help='directory of the HTML page (default: '
                      'HOME/reports/compare)')
  p.add_argument('--resamples', type=int, default=4000,
                 help='bootstrap resamples for the 95%% intervals')
  p.set_defaults(func=run)


def run(args) -> int:
  from pipeline import compare  # pylint: disable=g-import-not-at-top
  if args.resamples < 100:
    raise options.UsageError('--resamples must be at least 100')
  cfg = compare.CompareConfig(
      pipeline=configs.PipelineConfig.from_home(args.home), a=args.a,
      b=args.b, output_dir=args.output, resamples=args.resamples)
  comparison, page = compare.run(cfg)
  print(compare.format_text(comparison))
  print(f'\n{page}')
  return 0
