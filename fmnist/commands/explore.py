"""`fmnist explore`: class balance, embeddings, duplicates and label errors of
a span, as HTML/PNG and CSV files."""

from fmnist import options


def register(sub) -> None:
  p = sub.add_parser(
      'explore', help='explore a span: balance, embeddings, near-duplicates, '
                      'likely label errors (HTML, CSV)',
      description='Reads a span written by `fmnist ingest` and writes '
                  'index.html, PNGs, near_duplicates.csv and label_issues.csv.')
  options.add_home(p)
  p.add_argument('--span', type=int, default=None,
                 help='span number (default: the newest under HOME/data)')
  p.add_argument('--output', default=None,
                 help='directory of the page (default: HOME/reports/explore)')
  p.add_argument('--sample', type=int, default=3000,
                 help='images in the t-SNE plot (default: %(default)s)')
  p.set_defaults(func=run)


def run(args) -> int:
  from pipeline import explore  # pylint: disable=g-import-not-at-top
  result = explore.run(explore.ExploreConfig(
      home=args.home, span=args.span, output_dir=args.output,
      sample=args.sample))
  print(explore.format_result(result))
  print(f'\n{result.page}')
  return 0
