"""Shared by the monitoring tests: request logs as the proxy writes them.

JSONL files or BigQuery rows, through the proxy's own sinks. Imported by name from test modules (a `conftest` import would depend on which
conftest.py pytest loaded last).
"""

import json
import os
import time

import numpy as np

DATASET_DIR = '/usr/share/datasets/fashion-mnist'
VERSION = '7'  # the pushed model the home's MLMD records


def served_requests(images, class_ids, version=VERSION, timestamp=None):
  """What the proxy hands its request log: requests of up to 32 images."""
  from serving import request_log
  from models import features
  timestamp = time.time() if timestamp is None else timestamp
  class_ids = np.asarray(class_ids, np.int64)
  out = []
  for start in range(0, len(images), 32):
    part = slice(start, start + 32)
    n = len(class_ids[part])
    probabilities = np.full((n, features.NUM_CLASSES), 0.01, np.float32)
    probabilities[np.arange(n), class_ids[part]] = 0.91
    out.append(request_log.Served(
        timestamp=timestamp, request_id=f'{start:020x}', route='tfserving',
        model_name='fmnist', model_version=version,
        pixels=np.asarray(images[part], np.float32).reshape(n, -1),
        probabilities=probabilities, class_ids=class_ids[part],
        class_names=[features.CLASS_NAMES[c] for c in class_ids[part]]))
  return out


def write_logs(log_dir, images, class_ids, version=VERSION, timestamp=None,
               max_bytes=1 << 20, close=True):
  """Request logs exactly as the proxy writes them (rotating JSONL files);
  `close=False` leaves the last file in progress, as a running proxy does."""
  from serving import request_log
  sink = request_log.JsonlSink(str(log_dir), max_bytes=max_bytes,
                               max_seconds=3600)
  for served in served_requests(images, class_ids, version, timestamp):
    sink.write(sink.rows(served))
  if close:
    sink.close()


def write_bigquery(table, api_endpoint, images, class_ids, version=VERSION,
                   timestamp=None):
  """The same requests through the proxy's BigQuery sink (insertAll)."""
  from serving import request_log
  sink = request_log.BigQuerySink(table, 'fmnist-proxy',
                                  api_endpoint=api_endpoint)
  for served in served_requests(images, class_ids, version, timestamp):
    sink.write(sink.rows(served))


def summaries(home, output_dir=None):
  """summary.json of every monitoring run, oldest first."""
  root = output_dir or os.path.join(home, 'monitoring')
  with open(os.path.join(root, 'history.json'), encoding='utf-8') as f:
    entries = json.load(f)
  out = []
  for e in entries:
    with open(os.path.join(root, e['stamp'], 'summary.json'),
              encoding='utf-8') as f:
      out.append(json.load(f))
  return out
