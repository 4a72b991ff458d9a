"""The BigQuery client the request log writes with and the monitor reads with.

Light on purpose (no serving dependencies): the monitoring job runs from the
pipeline image, which does not install the proxy's extras.
"""

from typing import Optional


def create(project: str, api_endpoint: Optional[str] = None):
  """A BigQuery client; an http:// endpoint is an emulator (no credentials)."""
  from google.cloud import bigquery  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if api_endpoint:
    kwargs['client_options'] = {'api_endpoint': api_endpoint}
    if api_endpoint.startswith('http://'):
      from google.auth import credentials  # pylint: disable=g-import-not-at-top
      kwargs['credentials'] = credentials.AnonymousCredentials()
  return bigquery.Client(project=project, **kwargs)
