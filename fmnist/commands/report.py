"""`fmnist report`: the HTML/PNG evaluation report of the runs so far."""

from fmnist import options
from pipeline import configs


def register(sub) -> None:
  p = sub.add_parser('report', help='write the evaluation report (HTML/PNG)')
  options.add_home(p)
  p.add_argument('--output', default=None,
                 help='report directory (default: HOME/reports)')
  p.set_defaults(func=run)


def run(args) -> int:
  from pipeline import report  # pylint: disable=g-import-not-at-top
  cfg = configs.PipelineConfig.from_home(args.home)
  print(report.write_report(cfg, output_dir=args.output))
  return 0
