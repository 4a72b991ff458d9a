"""Reads the proxy's JSONL request logs (serving/request_log.py) into a window.

Rotated `*.jsonl` files and the `.jsonl.inprogress` file a running proxy is
still writing are read alike, the latter up to its last complete line: a live
proxy rotates hourly or at 64 MB, and a monitor that waited for that would not
see the traffic of the last hour. A row whose pixels are a list of integers is
kept whatever its length or values, so TFDV names wrong shapes and
out-of-domain pixels as schema anomalies. A row that cannot be read as an
instance at all (broken JSON, no pixel list, non-integer values, no
timestamp) is skipped and counted; that is a logging fault, not something the
model was sent. `Window`, `Instance` and these rules are shared with the
BigQuery reader (monitoring/bigquery_logs.py).
"""

import dataclasses
import datetime
import glob
import json
import os
import re
from typing import List, Optional, Tuple

from monitoring.config import MonitorError

_INT64 = (-2 ** 63, 2 ** 63 - 1)
_MAX_EXAMPLES = 5  # skipped rows quoted in the report
_RELATIVE = re.compile(r'^(\d+)([smhd])$')
_UNITS = {'s': 'seconds', 'm': 'minutes', 'h': 'hours', 'd': 'days'}


@dataclasses.dataclass(frozen=True)
class Instance:
  """One served image as the model saw it, and what the model answered."""
  timestamp: datetime.datetime
  model_version: str
  pixels: List[int]
  class_id: Optional[int]
  # The logged class probabilities, as logged (None if absent or not a list
  # of numbers); monitoring.detectors decides whether they are usable.
  probabilities: Optional[List[float]] = None


@dataclasses.dataclass(frozen=True)
class Window:
  """The instances one monitoring run looks at, oldest first."""
  instances: Tuple[Instance, ...]
  files: Tuple[str, ...]
  skipped: int = 0                     # unreadable rows in the files read
  skipped_examples: Tuple[str, ...] = ()  # 'file:line: reason'

  def __len__(self) -> int:
    return len(self.instances)

  @property
  def first(self) -> Optional[datetime.datetime]:
    return self.instances[0].timestamp if self.instances else None

  @property
  def last(self) -> Optional[datetime.datetime]:
    return self.instances[-1].timestamp if self.instances else None

  def versions(self) -> dict:
    """Instances per model version, in order of first appearance."""
    counts = {}
    for i in self.instances:
      counts[i.model_version] = counts.get(i.model_version, 0) + 1
    return counts

  @property
  def served_version(self) -> Optional[str]:
    """The version that answered the newest instance."""
    return self.instances[-1].model_version if self.instances else None


def parse_time(text: str) -> datetime.datetime:
  """An ISO-8601 time as the proxy writes it (`...Z`); naive means UTC."""
  value = datetime.datetime.fromisoformat(text.strip().replace('Z', '+00:00'))
  if value.tzinfo is None:
    value = value.replace(tzinfo=datetime.timezone.utc)
  return value


def parse_since(text: str, now: datetime.datetime) -> datetime.datetime:
  """`24h`, `90m`, `7d` before `now`, or an ISO-8601 time (UTC if naive)."""
  m = _RELATIVE.match(text.strip())
  if m:
    return now - datetime.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
  try:
    return parse_time(text)
  except ValueError:
    raise MonitorError(f'--since {text!r}: expected a duration like 24h, 90m '
                       'or 7d, or a time like 2026-01-31T12:00:00Z') from None


def _is_int(value) -> bool:
  return (isinstance(value, int) and not isinstance(value, bool) and
          _INT64[0] <= value <= _INT64[1])


def check_pixels(value) -> List[int]:
  """Any list of integers (TFDV judges shape and domain); else ValueError."""
  if not isinstance(value, list) or not all(_is_int(p) for p in value):
    raise ValueError("'pixels' is not a list of integers")
  return value


def check_class_id(value, name: str = 'class_id') -> Optional[int]:
  """An integer or None (a missing class is TFDV's to flag); else ValueError."""
  if value is not None and not _is_int(value):
    raise ValueError(f"'{name}' is not an integer")
  return value


def probabilities_of(value) -> Optional[List[float]]:
  """A list of numbers (NaN included: counted later), else None.

  Never a reason to skip a row: the pixels still tell TFDV what was served.
  """
  if isinstance(value, list) and all(
      isinstance(p, (int, float)) and not isinstance(p, bool) for p in value):
    return [float(p) for p in value]
  return None


def parse_row(line: str) -> Instance:
  """One JSONL row; raises ValueError saying why it is not an instance."""
  try:
    row = json.loads(line)
  except ValueError as e:
    raise ValueError(f'not JSON ({e})') from None
  if not isinstance(row, dict):
    raise ValueError('not a JSON object')
  pixels = check_pixels(row.get('pixels'))
  class_id = check_class_id(row.get('class_id'))
  try:
    timestamp = parse_time(str(row['timestamp']))
  except (KeyError, ValueError):
    raise ValueError("no valid 'timestamp'") from None
  return Instance(timestamp=timestamp,
                  model_version=str(row.get('model_version', '')),
                  pixels=pixels, class_id=class_id,
                  probabilities=probabilities_of(row.get('probabilities')))


def make_window(instances: List[Instance], files: List[str],
                skipped: List[str], last: Optional[int] = None) -> Window:
  """Oldest first (stable on equal times), the newest `last` if given.

  Shared by every log source, so a window means the same whichever it is.
  """
  instances = sorted(instances, key=lambda i: i.timestamp)
  if last is not None:
    instances = instances[-last:] if last > 0 else []
  return Window(instances=tuple(instances), files=tuple(sorted(files)),
                skipped=len(skipped),
                skipped_examples=tuple(skipped[:_MAX_EXAMPLES]))


_IN_PROGRESS = '.inprogress'


def log_files(log_dir: str) -> List[str]:
  """Rotated and in-progress log files, oldest name first (names start with
  the UTC time)."""
  # In-progress files are listed first: one renamed in between then shows
  # up twice (its open fails, the rotated name is read) rather than never.
  live = glob.glob(os.path.join(log_dir, '*.jsonl' + _IN_PROGRESS))
  done = set(glob.glob(os.path.join(log_dir, '*.jsonl')))
  return sorted(done | {p for p in live if p[:-len(_IN_PROGRESS)] not in done})


def _at_current_name(action, path: str):
  """`action(path)`, or `action` of the rotated name if the in-progress file
  was renamed since it was listed (the rename keeps content and mtime)."""
  try:
    return action(path)
  except FileNotFoundError:
    if path.endswith(_IN_PROGRESS):
      return action(path[:-len(_IN_PROGRESS)])
    raise


def _mtime(path: str) -> float:
  return _at_current_name(os.path.getmtime, path)


def _open(path: str):
  return _at_current_name(
      lambda p: open(p, encoding='utf-8', errors='replace'), path)


def _read_file(path: str, since: Optional[datetime.datetime],
               instances: List[Instance], skipped: List[str]) -> None:
  with _open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.endswith('\n') and path.endswith(_IN_PROGRESS):
        break  # the row the proxy is writing right now
      if not line.strip():
        continue
      try:
        instance = parse_row(line)
      except ValueError as e:
        skipped.append(f'{os.path.basename(path)}:{number}: {e}')
        continue
      if since is None or instance.timestamp >= since:
        instances.append(instance)


def read_window(log_dir: str, since: Optional[datetime.datetime] = None,
                last: Optional[int] = None) -> Window:
  """Instances served from `since` on, at most the newest `last` of them.

  Files are read newest first (by modification time, which is at or after
  their newest row), and reading stops once older files cannot hold any of
  the newest `last` instances or any instance from `since` on.
  """
  files = log_files(log_dir)
  files.sort(key=_mtime, reverse=True)
  instances: List[Instance] = []
  skipped: List[str] = []
  read = []
  for path in files:
    mtime = datetime.datetime.fromtimestamp(_mtime(path),
                                            datetime.timezone.utc)
    if since is not None and mtime < since:
      break
    if last is not None and len(instances) >= last:
      newest = sorted((i.timestamp for i in instances), reverse=True)
      if mtime < newest[last - 1]:
        break
    _read_file(path, since, instances, skipped)
    read.append(path)
  return make_window(instances, read, skipped, last)
