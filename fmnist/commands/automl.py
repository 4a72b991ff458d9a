"""`fmnist automl export|train|compare`: the AutoML Vision baseline.

`export` writes a span as a Vertex AI image dataset (PNGs plus the
single-label classification import file); `train` creates the ImageDataset
and an AutoML image classification training pipeline through the SDK;
`compare` puts the AutoML model's own evaluation next to the CNN's TFMA one.
"""

import argparse
import os
import sys

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
  t = asub.add_parser(
      'train', help='create the ImageDataset and an AutoML training pipeline')
  _add_vertex(t)
  t.add_argument('--import-file', required=True,
                 help='gs://.../import.jsonl written by `automl export`')
  t.add_argument('--display-name', default='fmnist-automl')
  t.add_argument('--budget-node-hours', type=float, default=8.0,
                 help='training budget (8 to 800; default %(default)s)')
  t.add_argument('--wait', action='store_true',
                 help='follow the training pipeline to its end (hours)')
  t.set_defaults(func=train)
  c = asub.add_parser(
      'compare', help='the AutoML model\'s evaluation next to the CNN\'s')
  _add_vertex(c)
  options.add_home(c)
  c.add_argument('--model', required=True,
                 help='the AutoML model (projects/.../models/ID or its ID)')
  c.add_argument('--output', default=None,
                 help='directory of the page (default: HOME/reports/automl)')
  c.set_defaults(func=compare)


def _add_vertex(p) -> None:
  p.add_argument('--project', default=os.environ.get('FMNIST_PROJECT'),
                 help='GCP project (or FMNIST_PROJECT)')
  p.add_argument('--region', default=os.environ.get('FMNIST_REGION',
                                                    'us-central1'),
                 help='Vertex AI region (or FMNIST_REGION; default '
                      '%(default)s)')
  p.add_argument('--api-endpoint', default=None, help=argparse.SUPPRESS)


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


def train(args) -> int:
  from pipeline import automl  # pylint: disable=g-import-not-at-top
  from pipeline import vertex_submit  # pylint: disable=g-import-not-at-top
  cfg = automl.TrainConfig(
      project=args.project, region=args.region, import_file=args.import_file,
      display_name=args.display_name,
      budget_node_hours=args.budget_node_hours, wait=args.wait,
      api_endpoint=args.api_endpoint)
  result = automl.train(cfg, vertex_submit.default_credentials())
  print(f'dataset: {result.dataset}')
  print(f'training pipeline: {result.training_pipeline} ({result.state})')
  if result.error:
    print(f'error: {result.error}', file=sys.stderr)
  if result.model:
    print(f'model: {result.model}')
    print(f'next: fmnist automl compare --model {result.model}')
  return 0 if result.state in ('submitted', 'PIPELINE_STATE_SUCCEEDED') else 1


def compare(args) -> int:
  from pipeline import automl  # pylint: disable=g-import-not-at-top
  from pipeline import configs  # pylint: disable=g-import-not-at-top
  from pipeline import vertex_submit  # pylint: disable=g-import-not-at-top
  if not args.project:
    raise automl.AutoMLError('--project and --region are required')
  pipeline_cfg = configs.PipelineConfig.from_home(args.home)
  cnn = automl.cnn_side(pipeline_cfg)
  other = automl.automl_side(args.model, args.project, args.region,
                             args.api_endpoint,
                             vertex_submit.default_credentials())
  print(automl.format_comparison(cnn, other))
  page = automl.write_comparison(cnn, other, args.output or os.path.join(
      os.path.abspath(args.home), 'reports', 'automl'))
  print(f'\n{page}')
  return 0
