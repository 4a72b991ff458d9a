"""`fmnist`: one command with a subcommand per job.

  fmnist ingest            IDX files -> a new TFRecord span
  fmnist pipeline run      run the TFX pipeline (local; --runner vertex on GCP)
  fmnist pipeline compile  write the Vertex pipeline spec (no cloud needed)
  fmnist run               the main job: ingest if needed, run, summarize, report
  fmnist report            HTML/PNG evaluation report of the runs so far
  fmnist serve             the prediction proxy (see serving/)
  fmnist monitor           served traffic vs. training data: skew, drift, alert
  fmnist compare           two evaluated models: paired test, 95% CIs, HTML
  fmnist explore           a span's classes, embeddings, duplicates, label errors
  fmnist watch DIR         new IDX files in DIR -> the next span -> a pipeline run
  fmnist automl ...        the AutoML baseline: export a span, train, compare

Each subcommand lives in fmnist/commands/, parses its flags into typed configs
and calls the library. Errors a user can fix (`pipeline.errors.UserError`)
are printed as one `error: ...` line (exit 2), never as a traceback. TF/absl
logging is quiet unless --verbose.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from fmnist.commands import automl
from fmnist.commands import compare
from fmnist.commands import explore
from fmnist.commands import ingest
from fmnist.commands import monitor
from fmnist.commands import pipeline
from fmnist.commands import report
from fmnist.commands import run
from fmnist.commands import serve
from fmnist.commands import watch
from pipeline import configs
from pipeline.errors import UserError

COMMANDS = (ingest, pipeline, run, report, serve, monitor, compare, explore,
            watch, automl)

_OWN_CODE = tuple(os.path.join(configs.REPO_ROOT, d) + os.sep
                  for d in ('models', 'pipeline', 'fmnist', 'serving',
                            'monitoring'))


# A path the user gave that cannot be read or written (an --output under a
# file, a read-only --home): the user's to fix, so one line, not a traceback.
# TensorFlow's file layer (tf.io.gfile, also behind gs://) raises its own
# types, matched by name so the CLI need not import TensorFlow.
_FILE_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError,
                IsADirectoryError, FileExistsError)
_TF_FILE_ERRORS = ('NotFoundError', 'PermissionDeniedError',
                   'AlreadyExistsError')


def _is_file_error(e: BaseException) -> bool:
  if isinstance(e, _FILE_ERRORS):
    return True
  if not type(e).__module__.startswith('tensorflow'):
    return False
  name = type(e).__name__
  # FailedPrecondition is also TensorFlow's error for graph bugs; only its
  # "/a/file is not a directory" is a path problem.
  return name in _TF_FILE_ERRORS or (name == 'FailedPreconditionError' and
                                     'is not a directory' in str(e))


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
  # Set before TensorFlow is imported (commands import it when they run).
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
    import warnings  # pylint: disable=g-import-not-at-top
    warnings.filterwarnings('ignore')


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='fmnist', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('-v', '--verbose', action='store_true',
                      help='show TensorFlow/TFX/Beam logs')
  sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
  for command in COMMANDS:
    command.register(sub)
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
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if args.verbose or not _is_file_error(e):
      raise
    print(f'error: {e} (`fmnist -v {args.command} ...` shows where)',
          file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
