"""New IDX files in a directory -> one new span -> one pipeline run.

`check(cfg)` is one look at the source directory (local or gs://), the unit
both `fmnist watch --once` (what a Cloud Run job runs on each Eventarc
"object finalized" event, infra/deploy_trigger.sh) and the polling loop
`watch(cfg)` use:

1. all four IDX files of a set must be there (any of the names
   `ingest.find_idx_file` accepts), else nothing happens ("incomplete");
2. they must be complete: a completion marker file (`marker`) if one is
   configured, else, for local files, sizes unchanged between two looks
   `settle_seconds` apart (a copy in progress grows). Cloud Storage objects
   appear only when their upload finished, so gs:// sources need no wait;
3. the set's fingerprint (SHA-256 over the four files' bytes) is claimed in
   the record under `state_dir` with an exclusive create (O_EXCL locally, a
   generation-0 precondition on Cloud Storage), so a repeated event, or two
   events racing for the same files, ingest it once;
4. `ingest.ingest` validates the files (magic numbers, sizes, counts, gzip)
   before writing anything and writes the next span atomically; a bad file
   is a `IngestError`, the claim is released, and no span appears;
5. the pipeline runs on the new span (locally) or is submitted to Vertex AI,
   unless the config has no pipeline (`--no-run`).
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Callable, Dict, Optional, Tuple

import tensorflow as tf

from pipeline import configs
from pipeline import ingest

INCOMPLETE = 'incomplete'
UNSTABLE = 'still being written'
SEEN = 'already ingested'
INGESTED = 'ingested'
REJECTED = 'rejected'  # the polling loop's report of an invalid set
RECORD_DIR = 'ingested'  # under state_dir: one JSON file per fingerprint


@dataclasses.dataclass(frozen=True)
class WatchConfig:
  source_dir: str                 # where the four IDX files land
  state_dir: str                  # fingerprint record (local or gs://)
  ingest: ingest.IngestConfig     # output_dir = where spans go
  pipeline: Optional[configs.PipelineConfig] = None  # None: ingest only
  marker: Optional[str] = None    # e.g. _SUCCESS: written after the four
  settle_seconds: float = 5.0     # local files: sizes equal this far apart
  interval_seconds: float = 30.0  # between looks when watching
  once: bool = False

  def __post_init__(self):
    if self.settle_seconds < 0 or self.interval_seconds <= 0:
      raise configs.ConfigError('--interval must be positive (and --settle '
                                'not negative)')
    if self.marker and ('/' in self.marker or self.marker in ('.', '..')):
      raise configs.ConfigError(f'--marker {self.marker!r} must be a file '
                                'name in the watched directory')


@dataclasses.dataclass(frozen=True)
class Event:
  """What one look found and did."""
  status: str
  detail: str
  fingerprint: Optional[str] = None
  span_dir: Optional[str] = None
  run: Optional[str] = None       # the run's summary line or the job name

  def line(self) -> str:
    return f'{self.status}: {self.detail}' + (f'\n{self.run}' if self.run
                                             else '')


def _files(source_dir: str) -> Optional[Tuple[str, ...]]:
  """The four IDX paths, or None while any is missing."""
  try:
    return tuple(ingest.find_idx_file(source_dir, name)
                 for name in ingest.TRAIN_FILES + ingest.TEST_FILES)
  except ingest.IngestError:
    return None


def _sizes(paths) -> Optional[Tuple[int, ...]]:
  try:
    return tuple(tf.io.gfile.stat(p).length for p in paths)
  except tf.errors.NotFoundError:  # renamed or removed meanwhile
    return None


def fingerprint(paths) -> str:
  digest = hashlib.sha256()
  for path in paths:
    digest.update(os.path.basename(path).encode() + b'\0')
    with tf.io.gfile.GFile(path, 'rb') as f:
      for block in iter(lambda: f.read(1 << 20), b''):
        digest.update(block)
  return digest.hexdigest()


# --- the record: one file per fingerprint, created exclusively --------------

def _record_path(cfg: WatchConfig, fp: str) -> str:
  return f'{cfg.state_dir.rstrip("/")}/{RECORD_DIR}/{fp}.json'


def _claim(path: str, content: Dict) -> bool:
  """Creates `path` only if it does not exist; False if it did."""
  data = json.dumps(content, indent=1)
  if path.startswith('gs://'):
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
    bucket, _, name = path[len('gs://'):].partition('/')
    try:
      storage.Client().bucket(bucket).blob(name).upload_from_string(
          data, if_generation_match=0)
    except exceptions.PreconditionFailed:
      return False
    return True
  os.makedirs(os.path.dirname(path), exist_ok=True)
  try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, 'w', encoding='utf-8') as f:
    f.write(data)
  return True


def _read(path: str) -> Dict:
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except (tf.errors.NotFoundError, ValueError):
    return {}


def _write(path: str, content: Dict) -> None:
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(content, indent=1))


# --- one look ---------------------------------------------------------------

def check(cfg: WatchConfig, previous_sizes: Optional[Tuple[int, ...]] = None,
          sleep: Callable[[float], None] = time.sleep) -> Event:
  """One look at `cfg.source_dir`; ingests and runs at most once per set.

  `previous_sizes` (from the last look of a polling loop) replaces the wait
  between two size readings.
  """
  if not cfg.source_dir.startswith('gs://') and not os.path.isdir(
      cfg.source_dir):
    raise configs.ConfigError(f'{cfg.source_dir} is not a directory')
  paths = _files(cfg.source_dir)
  if paths is None:
    return Event(INCOMPLETE, f'waiting for all four IDX files in '
                 f'{cfg.source_dir}')
  if cfg.marker:
    if not tf.io.gfile.exists(f'{cfg.source_dir.rstrip("/")}/{cfg.marker}'):
      return Event(INCOMPLETE, f'waiting for the marker {cfg.marker}')
  elif not cfg.source_dir.startswith('gs://'):
    sizes = _sizes(paths)
    if previous_sizes is None:
      sleep(cfg.settle_seconds)
      previous_sizes, sizes = sizes, _sizes(paths)
    if sizes is None or sizes != previous_sizes:
      return Event(UNSTABLE, 'file sizes changed between two looks; waiting')
  fp = fingerprint(paths)
  record = _record_path(cfg, fp)
  if not _claim(record, {'state': 'ingesting', 'files': list(paths),
                         'started': time.time()}):
    done = _read(record)
    if done.get('state') == 'ingested':
      return Event(SEEN, f'these files were ingested as {done["span_dir"]} '
                   f'(record {record})', fp, done['span_dir'])
    # Another look is ingesting them, or one was killed half way (its span
    # was never renamed into place): say how to retry.
    return Event(SEEN, 'these files are being ingested by another look '
                 f'since {time.ctime(done.get("started", 0))}; if none is, '
                 f'delete {record} to ingest them again', fp)
  try:
    span_dir = ingest.ingest(dataclasses.replace(
        cfg.ingest, source_dir=cfg.source_dir, span=None))
  except BaseException:
    tf.io.gfile.remove(record)  # a fixed upload (or a retry) may try again
    raise
  _write(record, {'state': 'ingested', 'files': list(paths),
                  'span_dir': span_dir, 'finished': time.time()})
  logging.info('Ingested %s as %s', cfg.source_dir, span_dir)
  run = _start_pipeline(cfg.pipeline) if cfg.pipeline else None
  return Event(INGESTED, f'new span {span_dir}', fp, span_dir, run)


def _start_pipeline(cfg: configs.PipelineConfig) -> str:
  """Runs the pipeline locally, or submits it (and waits if configured)."""
  if cfg.vertex is None:
    from pipeline import local_runner  # pylint: disable=g-import-not-at-top
    from pipeline import summary  # pylint: disable=g-import-not-at-top
    return summary.format_summary(local_runner.run_local(cfg))
  from pipeline import vertex_submit  # pylint: disable=g-import-not-at-top
  submission = vertex_submit.submit(cfg)
  if not cfg.vertex.wait:
    return f'submitted {submission.resource_name}\n{submission.console_url}'
  outcome = vertex_submit.wait(
      submission, cfg.vertex.poll_seconds,
      lambda state: logging.info('%s: %s', submission.resource_name, state))
  if not outcome.succeeded:
    raise vertex_submit.SubmissionError(
        f'pipeline job {submission.resource_name} ended {outcome.state}'
        + (f': {outcome.error}' if outcome.error else ''))
  return f'{submission.resource_name} succeeded'


def watch(cfg: WatchConfig, report: Callable[[Event], None],
          sleep: Callable[[float], None] = time.sleep,
          looks: Optional[int] = None) -> Event:
  """`check` once (cfg.once) or every `interval_seconds`; reports changes.

  Between looks the sizes of the previous look stand in for the settle wait.
  The loop reports an invalid set and keeps watching (`--once` raises).
  Returns the last event (the loop ends only with `once` or after `looks`).
  """
  if cfg.once:
    event = check(cfg, sleep=sleep)
    report(event)
    return event
  previous, last_line, n = None, None, 0
  while True:
    # The first look has no sizes to compare with: () never matches.
    try:
      event = check(cfg, previous_sizes=previous or (), sleep=sleep)
    except ingest.IngestError as e:  # keep watching for a fixed upload
      event = Event(REJECTED, str(e))
    paths = _files(cfg.source_dir)
    previous = _sizes(paths) if paths else None
    if event.line() != last_line:
      report(event)
      last_line = event.line()
    n += 1
    if looks is not None and n >= looks:
      return event
    sleep(cfg.interval_seconds)
