"""`fmnist ingest`: IDX files -> a new TFRecord span."""

from fmnist import options


def register(sub) -> None:
  p = sub.add_parser('ingest', help='write the IDX files as a new span')
  options.add_home(p)
  options.add_ingest_args(p)
  p.add_argument('--span', type=int, default=None,
                 help='span number (default: one after the newest)')
  p.set_defaults(func=run)


def run(args) -> int:
  from pipeline import ingest  # pylint: disable=g-import-not-at-top
  print(f'wrote {ingest.ingest(options.ingest_config(args, args.span))}')
  return 0
