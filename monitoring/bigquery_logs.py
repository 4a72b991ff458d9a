"""Reads the proxy's BigQuery request log (`fmnist serve --log-sink bigquery`).

The table has one row per request in Vertex AI's request-response logging
schema (serving/bigquery_schema.json): `request_payload[i]` is
`{"pixels": [...]}`, `response_payload[i]` the answer with `class_ids`,
`deployed_model_id` the model version. Each pair becomes a `logs.Instance`
under the JSONL reader's rules: odd pixels are kept for TFDV to judge, an
entry that is not an instance is skipped, counted and quoted.

One parameterized query (`logging_time >= @since`, newest first) read with
the client's `query_and_wait`. `--last N` is not a SQL LIMIT: a row holds up
to 64 instances and unreadable ones do not count, so reading stops (no more
result pages are fetched) once N readable instances are in. What a user can
fix (the table name, a missing table, permissions, credentials, the endpoint)
is raised as MonitorError with what to do.
"""

import datetime
import json
import re
from typing import List, Optional, Tuple

from monitoring import logs
from serving import bigquery_client
from monitoring.config import MonitorError
from monitoring.config import parse_table

COLUMNS = ('logging_time', 'deployed_model_id', 'request_id',
           'request_payload', 'response_payload')


def query(table: str, since: Optional[datetime.datetime]) -> Tuple[str, list]:
  """The SQL and its parameters; `table` must have passed `parse_table`."""
  from google.cloud import bigquery  # pylint: disable=g-import-not-at-top
  where = 'WHERE logging_time >= @since ' if since is not None else ''
  sql = (f'SELECT {", ".join(COLUMNS)} FROM `{table}` {where}'
         'ORDER BY logging_time DESC')
  params = ([bigquery.ScalarQueryParameter('since', 'TIMESTAMP', since)]
            if since is not None else [])
  return sql, params


def _json_object(text: str, column: str) -> dict:
  try:
    value = json.loads(text)
  except (TypeError, ValueError) as e:
    raise ValueError(f'{column} is not JSON ({e})') from None
  if not isinstance(value, dict):
    raise ValueError(f'{column} is not a JSON object')
  return value


def _instance(logging_time, model_id, request: str,
              response: Optional[str]) -> logs.Instance:
  """One payload pair; raises ValueError saying why it is not an instance."""
  pixels = logs.check_pixels(
      _json_object(request, 'request_payload').get('pixels'))
  class_id = None  # no response entry: a missing class, as in JSONL
  probabilities = None
  if response is not None:
    answer = _json_object(response, 'response_payload')
    class_id = logs.check_class_id(answer.get('class_ids'), 'class_ids')
    probabilities = logs.probabilities_of(answer.get('probabilities'))
  if not isinstance(logging_time, datetime.datetime):
    raise ValueError("no valid 'logging_time'")
  return logs.Instance(timestamp=logging_time,
                       model_version='' if model_id is None else str(model_id),
                       pixels=pixels, class_id=class_id,
                       probabilities=probabilities)


def _iso(t: datetime.datetime) -> str:
  """As the proxy writes `logging_time`."""
  return t.astimezone(datetime.timezone.utc).isoformat(
      timespec='milliseconds').replace('+00:00', 'Z')


def row_instances(row, skipped: List[str]) -> List[logs.Instance]:
  """The instances of one request row, in payload order; quotes the rest."""
  logging_time = row.get('logging_time')
  request_id = row.get('request_id')
  when = (_iso(logging_time) if isinstance(logging_time, datetime.datetime)
          else 'no time')
  where = f'request {"?" if request_id is None else int(request_id)} ({when})'
  payloads = list(row.get('request_payload') or [])
  responses = list(row.get('response_payload') or [])
  if not payloads:
    skipped.append(f'{where}: no request_payload')
    return []
  out = []
  for i, payload in enumerate(payloads):
    try:
      out.append(_instance(logging_time, row.get('deployed_model_id'), payload,
                           responses[i] if i < len(responses) else None))
    except ValueError as e:
      skipped.append(f'{where} instance {i}: {e}')
  return out


def _message(e: Exception) -> str:
  """The server's own message when there is one, on one line."""
  errors = getattr(e, 'errors', None) or []
  if errors and isinstance(errors[0], dict) and errors[0].get('message'):
    text = errors[0]['message']
  else:  # api_core puts 'METHOD URL: ' before the message
    text = re.sub(r'^[A-Z]+ \S+: ', '', str(getattr(e, 'message', None) or e))
  lines = str(text).strip().splitlines()
  return lines[0][:500] if lines else type(e).__name__


def _user_error(e: Exception, table: str,
                api_endpoint: Optional[str]) -> MonitorError:
  """What to fix, in one line, for what reading `table` raised."""
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions as auth_exceptions  # pylint: disable=g-import-not-at-top
  project, dataset, name = parse_table(table)
  message = _message(e)
  if isinstance(e, exceptions.NotFound):
    return MonitorError(
        f'--bq-table {table}: {message}; create the table with `bq mk --table '
        f'{project}:{dataset}.{name} serving/bigquery_schema.json` and log to '
        f'it with `fmnist serve --log-sink bigquery --bq-table {table}`')
  if isinstance(e, exceptions.Forbidden):
    return MonitorError(
        f'--bq-table {table}: permission denied ({message}); the identity '
        f'running the monitor needs roles/bigquery.jobUser on project '
        f'{project} and roles/bigquery.dataViewer on dataset {dataset}')
  if isinstance(e, exceptions.BadRequest):
    return MonitorError(
        f'--bq-table {table}: BigQuery rejected the query ({message}); the '
        'table must have the columns of serving/bigquery_schema.json')
  if isinstance(e, (exceptions.Unauthorized, auth_exceptions.GoogleAuthError)):
    return MonitorError(
        f'no usable Google credentials for BigQuery ({message}); run `gcloud '
        'auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS '
        '(a Cloud Run job uses its service account)')
  cause = e
  while getattr(cause, 'cause', None) is not None:  # what retries gave up on
    cause = cause.cause
  if cause is not e:
    message = f'{message}; last error: {_message(cause)[:300]}'
  where = api_endpoint or 'bigquery.googleapis.com'
  return MonitorError(f'reading --bq-table {table} from {where} failed '
                      f'({message}); check --bq-api-endpoint and the network')


def read_window(table: str, since: Optional[datetime.datetime] = None,
                last: Optional[int] = None,
                api_endpoint: Optional[str] = None,
                timeout_s: float = 60.0) -> logs.Window:
  """Instances logged from `since` on, at most the newest `last` of them.

  Transient errors are retried for `timeout_s` in all (a request for half of
  it, so the query can still be restarted once, as the client's own ratio
  allows); what is left is a MonitorError.
  """
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions as auth_exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import bigquery  # pylint: disable=g-import-not-at-top
  from google.cloud.bigquery import retry as bq_retry  # pylint: disable=g-import-not-at-top
  import requests  # pylint: disable=g-import-not-at-top
  project, _, _ = parse_table(table)
  sql, params = query(table, since)
  newest_first: List[logs.Instance] = []
  skipped: List[str] = []
  try:
    rows = bigquery_client.create(project, api_endpoint).query_and_wait(
        sql, job_config=bigquery.QueryJobConfig(query_parameters=params),
        api_timeout=timeout_s / 4,
        retry=bq_retry.DEFAULT_RETRY.with_deadline(timeout_s / 2),
        job_retry=bq_retry.DEFAULT_JOB_RETRY.with_deadline(timeout_s))
    for row in rows:  # newest request first; pages are fetched as needed
      newest_first.extend(reversed(row_instances(row, skipped)))
      if last is not None and len(newest_first) >= last:
        break
  except (exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError,
          requests.exceptions.RequestException) as e:
    raise _user_error(e, table, api_endpoint) from None
  return logs.make_window(newest_first[::-1], [], skipped, last)
