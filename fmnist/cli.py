"""`fmnist`: one command with a subcommand per job.

  fmnist ingest            IDX files -> a new TFRecord span
  fmnist pipeline run      run the TFX pipeline (local; --runner vertex on GCP)
  fmnist pipeline compile  write the Vertex pipeline spec (no cloud needed)
  fmnist run               the main job: ingest if needed, run, summarize, report
  fmnist report            HTML/PNG evaluation report of the runs so far
  fmnist serve             the prediction proxy (see serving/)
  fmnist monitor           served traffic vs. training data: skew, drift, alert

Errors a user can fix are printed as one `error: ...` line (exit 2), never as
a traceback. TF/absl logging is quiet unless --verbose.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from pipeline import configs


class UsageError(Exception):
  """A problem with the command line or environment that the user can fix."""


_OWN_CODE = tuple(os.path.join(configs.REPO_ROOT, d) + os.sep
                  for d in ('models', 'pipeline', 'fmnist', 'serving',
                            'monitoring'))


class _ProgressFilter(logging.Filter):
  """Without --verbose: our own logs and TFX's component start/finish lines."""

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.pathname.startswith(_OWN_CODE) or
            str(record.msg).startswith('Component %s is'))


class _StderrHandler(logging.StreamHandler):
  """Writes to whatever sys.stderr is now (pytest swaps it between tests)."""

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, value):
    del value


def _setup_logging(verbose: bool) -> None:
  # Set before TensorFlow is imported (it is imported lazily below).
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0' if verbose else '3')
  root = logging.getLogger()
  # Replace plain stream handlers (ours from an earlier call, or one a library
  # installed with basicConfig); other handlers (pytest's, absl's) stay.
  for handler in list(root.handlers):
    if type(handler) in (logging.StreamHandler, _StderrHandler):
      root.removeHandler(handler)
  handler = _StderrHandler()
  handler.setFormatter(
      logging.Formatter('%(asctime)s %(levelname)s %(message)s'))
  if not verbose:
    handler.addFilter(_ProgressFilter())
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  if not verbose:
    # TensorFlow's Python logger has a handler of its own.
    logging.getLogger('tensorflow').setLevel(logging.ERROR)
    import warnings
    warnings.filterwarnings('ignore')


def add_home(p: argparse.ArgumentParser) -> None:
  p.add_argument('--home', default=configs.DEFAULT_HOME,
                 help='working directory for spans, pipeline outputs, MLMD and '
                      'the serving directory (default: %(default)s)')


def _add_ingest_args(p: argparse.ArgumentParser) -> None:
  p.add_argument('--source', default=configs.DEFAULT_SOURCE_DIR,
                 help='directory (local or gs://) with the four IDX .gz files '
                      '(default: %(default)s)')
  p.add_argument('--train-limit', type=int, default=None,
                 help='take only this many official train images')
  p.add_argument('--train-offset', type=int, default=0)
  p.add_argument('--test-limit', type=int, default=None,
                 help='take only this many official test images')
  p.add_argument('--test-offset', type=int, default=0)
  p.add_argument('--eval-fraction', type=float, default=0.1,
                 help='share of train images held out for early stopping')


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
  add_home(p)
  add_pipeline_knobs(p)


def add_pipeline_knobs(p) -> None:
  """Model and blessing knobs of a run (also `fmnist monitor`'s retraining)."""
  p.add_argument('--epochs', type=int, default=None,
                 help='maximum training epochs (default: the model config)')
  p.add_argument('--min-accuracy', type=float, default=None,
                 help='test accuracy a model needs to be blessed')
  p.add_argument('--max-accuracy-drop', type=float, default=None,
                 help='allowed accuracy drop vs. the latest blessed model')
  p.add_argument('--no-cache', action='store_true',
                 help='rerun every component even if its inputs are unchanged')
  p.add_argument('--model-param', action='append', default=[],
                 metavar='KEY=VALUE',
                 help='override a ModelConfig field (models/config.py), e.g. '
                      'convs_per_block=1 or conv_filters=[16,32]; repeatable')


def _model_config(args):
  """ModelConfig defaults, then --model-param overrides, then --epochs."""
  import json
  from models.config import ModelConfig
  values = ModelConfig().to_dict()
  for pair in args.model_param:
    key, sep, text = pair.partition('=')
    if not sep:
      raise UsageError(f'--model-param {pair!r}: expected KEY=VALUE')
    if key not in values:
      raise UsageError(f'--model-param: unknown key {key!r}; known: '
                       f'{", ".join(sorted(values))}')
    try:
      value = json.loads(text)
    except json.JSONDecodeError:
      raise UsageError(f'--model-param {pair!r}: the value must be a JSON '
                       'number, boolean or list') from None
    default = values[key]
    if (isinstance(default, bool) != isinstance(value, bool) or
        isinstance(default, list) != isinstance(value, list) or
        (isinstance(default, int) and not isinstance(value, int)) or
        not isinstance(value, (int, float, list))):
      raise UsageError(f'--model-param {key}: {text!r} is not a '
                       f'{type(default).__name__} like the default {default!r}')
    values[key] = value
  if args.epochs is not None:
    values['epochs'] = args.epochs
  if values['epochs'] < 1:
    raise UsageError('--epochs must be at least 1')
  return ModelConfig.from_dict(values)


def pipeline_config(args) -> configs.PipelineConfig:
  overrides = {}
  if args.min_accuracy is not None:
    overrides['min_accuracy'] = args.min_accuracy
  if args.max_accuracy_drop is not None:
    overrides['max_accuracy_drop'] = args.max_accuracy_drop
  if args.no_cache:
    overrides['enable_cache'] = False
  return configs.PipelineConfig.from_home(
      args.home, model=_model_config(args), **overrides)


def cmd_ingest(args) -> int:
  from pipeline import ingest
  span_dir = ingest.ingest(ingest.IngestConfig(
      source_dir=args.source,
      output_dir=os.path.join(os.path.abspath(args.home), 'data'),
      span=args.span, train_limit=args.train_limit,
      train_offset=args.train_offset, test_limit=args.test_limit,
      test_offset=args.test_offset, eval_fraction=args.eval_fraction))
  print(f'wrote {span_dir}')
  return 0


def run_local(cfg: configs.PipelineConfig) -> int:
  from pipeline import ingest
  from pipeline import local_runner
  from pipeline import summary
  if not ingest.existing_spans(cfg.data_root):
    raise UsageError(f'no span under {cfg.data_root}: run `fmnist ingest '
                     f'--home {os.path.dirname(cfg.data_root)}` first')
  local_runner.run(cfg)
  print(summary.format_summary(summary.summarize(cfg)))
  return 0


def cmd_pipeline_run(args) -> int:
  if args.runner == 'vertex':
    from pipeline import vertex_cli
    return vertex_cli.run(args)
  return run_local(pipeline_config(args))


def cmd_pipeline_compile(args) -> int:
  from pipeline import vertex_cli
  return vertex_cli.compile_spec(args)


def cmd_run(args) -> int:
  """The main job: first span from the real dataset if none, run, report."""
  from pipeline import ingest
  cfg = pipeline_config(args)
  if not ingest.existing_spans(cfg.data_root):
    print(f'ingesting {args.source} as span 1 ...', flush=True)
    cmd_ingest(argparse.Namespace(**{**vars(args), 'span': None}))
  status = run_local(cfg)
  from pipeline import report
  print(f'report: {report.write_report(cfg)}')
  return status


def cmd_report(args) -> int:
  from pipeline import report
  cfg = configs.PipelineConfig.from_home(args.home)
  print(report.write_report(cfg, output_dir=args.output))
  return 0


def user_errors() -> tuple:
  """Errors whose message tells the user what to fix (printed, no traceback).

  Only modules a command has loaded are asked, so `--help` stays fast.
  """
  errors = [UsageError, configs.ConfigError]
  for module, name in (('pipeline.ingest', 'IngestError'),
                       ('pipeline.validation', 'DataValidationError'),
                       ('monitoring.config', 'MonitorError')):
    if module in sys.modules:
      errors.append(getattr(sys.modules[module], name))
  return tuple(errors)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='fmnist', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('-v', '--verbose', action='store_true',
                      help='show TensorFlow/TFX/Beam logs')
  sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

  p = sub.add_parser('ingest', help='write the IDX files as a new span')
  add_home(p)
  _add_ingest_args(p)
  p.add_argument('--span', type=int, default=None,
                 help='span number (default: one after the newest)')
  p.set_defaults(func=cmd_ingest)

  p = sub.add_parser('pipeline', help='run or compile the TFX pipeline')
  psub = p.add_subparsers(dest='pipeline_command', required=True,
                          metavar='ACTION')
  r = psub.add_parser('run', help='run the pipeline on the newest span')
  r.add_argument('--runner', choices=('local', 'vertex'), default='local')
  _add_pipeline_args(r)
  from pipeline import vertex_cli
  vertex_cli.add_args(r)
  r.set_defaults(func=cmd_pipeline_run)
  c = psub.add_parser('compile', help='write the Vertex AI pipeline spec')
  c.add_argument('--runner', choices=('vertex',), default='vertex')
  _add_pipeline_args(c)
  vertex_cli.add_args(c)
  c.set_defaults(func=cmd_pipeline_compile)

  p = sub.add_parser('run', help='main job: ingest the real data if needed, '
                                 'run the local pipeline, summarize, report')
  _add_pipeline_args(p)
  _add_ingest_args(p)
  p.set_defaults(func=cmd_run)

  p = sub.add_parser('report', help='write the evaluation report (HTML/PNG)')
  add_home(p)
  p.add_argument('--output', default=None,
                 help='report directory (default: HOME/reports)')
  p.set_defaults(func=cmd_report)

  try:
    from serving import cli as serving_cli
  except ImportError:
    serving_cli = None
  if serving_cli is not None:
    serving_cli.register(sub)
  try:
    from monitoring import cli as monitoring_cli
  except ModuleNotFoundError as e:
    if e.name != 'monitoring':
      raise
    monitoring_cli = None  # an image built without monitoring/
  if monitoring_cli is not None:
    monitoring_cli.register(sub)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  _setup_logging(args.verbose)
  # TFX's Beam executors parse sys.argv with absl flags (`-v` would become
  # absl's --verbosity); our arguments are parsed already and are not theirs.
  sys.argv = sys.argv[:1]
  try:
    return args.func(args)
  except Exception as e:  # pylint: disable=broad-except
    if not isinstance(e, user_errors()):
      raise
    print(f'error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    return 130


if __name__ == '__main__':
  sys.exit(main())
