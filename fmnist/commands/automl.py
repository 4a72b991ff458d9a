"""`fmnist automl export`: a span as a Vertex AI image dataset (PNGs plus the
single-label classification import file), the AutoML baseline's input."""

import os

from fmnist import options


def register(sub) -> None:
  p = sub.add_parser('automl', help='the AutoML Vision baseline (issue 15)')
  asub = p.add_subparsers(dest='automl_command', required=True,
                          metavar='ACTION')
  e = asub.add_parser(
      'export', help='write a span as PNGs + a Vertex AI image import file',
      description='Writes HOME/automl (or --output, local or gs://): '
                  'images/<split>/NNNNN.png and import.jsonl with ml_use '
                  'training/validation/test = the span\'s train/eval/test.')
  options.add_home(e)
  e.add_argument('--span', type=int, default=None,
                 help='span number (default: the newest under HOME/data)')
  e.add_argument('--output', default=None,
                 help='local or gs:// folder (default: HOME/automl)')
  e.add_argument('--uri-prefix', default=None,
                 help='gs:// folder the output will be uploaded to, so the '
                      'import file names the final URIs')
  e.add_argument('--limit', type=int, default=None,
                 help='at most this many images per split (a smoke test)')
  e.set_defaults(func=export)


def export(args) -> int:
  from pipeline import automl  # pylint: disable=g-import-not-at-top
  from pipeline import configs  # pylint: disable=g-import-not-at-top
  home = configs.PipelineConfig.from_home(args.home)
  result = automl.export(automl.ExportConfig(
      data_root=home.data_root,
      output_dir=args.output or os.path.join(os.path.abspath(args.home),
                                             'automl'),
      span=args.span, uri_prefix=args.uri_prefix, limit=args.limit),
      progress=lambda line: print(line, flush=True))
  print(f'span {result.span}: ' + ', '.join(
      f'{n} {use}' for use, n in result.counts.items()))
  print(f'import file: {result.import_file} (schema {automl.IMPORT_SCHEMA_URI})')
  if not result.uri_prefix.startswith('gs://'):
    print('to use it on Vertex AI: upload the folder and export again with '
          '--uri-prefix gs://BUCKET/FOLDER, or write straight to gs://')
  return 0
