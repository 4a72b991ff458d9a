"""The alert: a JSON POST to a webhook when served traffic is unhealthy.

The body carries `text` (one line, so Slack/Chat incoming webhooks show it
as is) and the structured findings for anything else. Delivery failures are
returned, never raised: the report is already written, and the verdict's exit
code still tells the scheduler.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Optional

SOURCE = 'fmnist-monitor'


def payload(summary: Dict, report_path: str, headline: str) -> Dict:
  """What the webhook receives (documented in docs/monitoring.md)."""
  return {
      'source': SOURCE,
      'text': headline,
      'verdict': summary['verdict'],
      'run': summary['stamp'],
      'time': summary['time'],
      'report': report_path,
      'instances': summary['instances'],
      'window': {k: summary['window'][k] for k in ('first', 'last')},
      'model_versions': summary['model_versions'],
      'baseline': summary['baseline']['description'],
      'anomalies': summary['anomalies'],
      'measurements': [m for m in summary['measurements'] if m['alert']],
      'skipped_rows': summary['window']['skipped_rows'],
  }


def redact(url: str) -> str:
  """The webhook as it may be printed and stored: scheme and host only.

  Incoming-webhook URLs carry their secret in the path (Slack, Chat).
  """
  parts = urllib.parse.urlsplit(url)
  host = parts.hostname or '?'
  if parts.port:
    host += f':{parts.port}'
  return f'{parts.scheme}://{host}/…' if parts.path.strip('/') else (
      f'{parts.scheme}://{host}')


def send(url: str, body: Dict, timeout: float) -> Optional[str]:
  """POSTs `body`; None when the webhook answered 2xx, else what went wrong."""
  try:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode('utf-8'), method='POST',
        headers={'Content-Type': 'application/json',
                 'User-Agent': SOURCE})
    with urllib.request.urlopen(request, timeout=timeout) as response:
      response.read()
  except urllib.error.HTTPError as e:
    return f'HTTP {e.code} {e.reason}'
  except (urllib.error.URLError, OSError, ValueError) as e:
    return str(getattr(e, 'reason', e))
  return None
