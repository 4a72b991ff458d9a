"""Monitoring runs on disk: one directory each, plus an index of all of them.

`HOME/monitoring/<UTC stamp>/` holds a run's outputs; it is written under a
temporary name and renamed, so a run directory is complete or absent.
`history.json` lists every run (oldest first) and `index.html` shows it; the
newest *healthy* run's served statistics are the next run's drift baseline,
as DataGate compares a span with the previous accepted one: otherwise a
shift would be drift once and then the new normal, and the return to normal
traffic would be reported as drift.
"""

import datetime
import json
import os
import shutil
from typing import Dict, List, Optional, Tuple

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from monitoring import config
from monitoring import report

HISTORY_JSON = 'history.json'
SUMMARY_JSON = 'summary.json'
SERVED_STATISTICS = 'served_statistics.pb'


def stamp_of(now: datetime.datetime) -> str:
  return now.astimezone(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


def _write_atomic(path: str, text: str) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, path)


def load(output_root: str) -> List[Dict]:
  path = os.path.join(output_root, HISTORY_JSON)
  if not os.path.isfile(path):
    return []
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def previous(output_root: str) -> Optional[
    Tuple[str, statistics_pb2.DatasetFeatureStatisticsList]]:
  """(stamp, served statistics) of the newest healthy run, if any."""
  for entry in reversed(load(output_root)):
    if entry['verdict'] != config.HEALTHY:
      continue
    path = os.path.join(output_root, entry['stamp'], SERVED_STATISTICS)
    if os.path.isfile(path):
      return entry['stamp'], tfdv.load_stats_binary(path)
  return None


def new_run_dir(output_root: str, now: datetime.datetime) -> Tuple[str, str]:
  """(stamp, temporary directory) for a run; `publish` renames it."""
  os.makedirs(output_root, exist_ok=True)
  stamp, n = stamp_of(now), 1
  while os.path.exists(os.path.join(output_root, stamp)):
    n += 1  # two runs within a second
    stamp = f'{stamp_of(now)}-{n}'
  tmp = os.path.join(output_root, f'.tmp-{stamp}')
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  return stamp, tmp


def publish(tmp_dir: str, output_root: str, stamp: str) -> str:
  final = os.path.join(output_root, stamp)
  os.rename(tmp_dir, final)
  return final


def _entry(summary: Dict) -> Dict:
  retraining = summary.get('retraining') or {}
  return {
      'stamp': summary['stamp'], 'time': summary['time'],
      'verdict': summary['verdict'], 'instances': summary['instances'],
      'first': summary['window']['first'], 'last': summary['window']['last'],
      'model_version': summary['baseline'].get('model_version'),
      'baseline_span': summary['baseline'].get('span'),
      'anomalies': len(summary['anomalies']),
      'retraining': retraining.get('status', ''),
      'report': f'{summary["stamp"]}/{report.REPORT_HTML}',
  }


def record(output_root: str, run_dir: str, summary: Dict) -> str:
  """Writes summary.json and report.html of a run, and updates the index.

  Called again when the alert or retraining outcome changes the summary.
  Returns the report's path.
  """
  _write_atomic(os.path.join(run_dir, SUMMARY_JSON),
                json.dumps(summary, indent=2) + '\n')
  path = report.render(summary, run_dir)
  entries = [e for e in load(output_root) if e['stamp'] != summary['stamp']]
  entries.append(_entry(summary))
  entries.sort(key=lambda e: e['stamp'])
  _write_atomic(os.path.join(output_root, HISTORY_JSON),
                json.dumps(entries, indent=2) + '\n')
  report.render_index(entries, os.path.join(output_root, report.INDEX_HTML))
  return path
