"""Schemathesis against the proxy's own OpenAPI document (issue 13).

Every route of `/openapi.json`, with bodies, paths and headers generated from
the schema (valid and invalid ones), sent over a real socket to uvicorn: no
response may be a 5xx, every response must match the spec (status code,
content type, body schema), and invalid requests must be rejected. Bounded in examples so it fits CI; hypothesis'
database is off, so a failure prints its reproducing case (`as_curl_command`)
to keep as a regression case in test_app_local.py, as the nested-JSON and
multipart findings are.
"""

import hypothesis
import pytest
import schemathesis


@pytest.fixture(scope='module')
def proxy_schema(live_proxy):
  """The real app on 127.0.0.1, and its schema as schemathesis loads it."""
  return schemathesis.openapi.from_url(f'{live_proxy}/openapi.json')


@pytest.mark.parametrize('mode', ['positive', 'negative'])
def test_no_5xx_and_responses_match_the_spec(proxy_schema, mode):
  # Schemathesis' pytest plugin does not load under pytest 9: drive each
  # operation's case strategy with hypothesis directly.
  generation = schemathesis.GenerationMode(mode)
  operations = [r.ok() for r in proxy_schema.get_all_operations()]
  assert len(operations) >= 10

  fuzzed = []
  for operation in operations:
    @hypothesis.given(case=operation.as_strategy(generation_mode=generation))
    @hypothesis.settings(max_examples=15, deadline=None, database=None,
                         derandomize=True, phases=[hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    def fuzz(case):
      response = case.call()
      assert response.status_code < 500, (
          f'{response.status_code} {response.text[:300]}\n'
          f'{case.as_curl_command()}')
      # A body can match the schema and still not be a usable image (any
      # bytes are a schema-valid upload, any array of numbers a valid
      # `instances`): the server's 400 for those is right, so "positive data
      # must be accepted" is the one check left out.
      case.validate_response(
          response, excluded_checks=[schemathesis.checks.positive_data_acceptance])

    try:
      fuzz()  # pylint: disable=no-value-for-parameter
    except hypothesis.errors.Unsatisfiable:
      # Some operations have no invalid request to make (no body, only a
      # string path parameter); every operation with a body must be fuzzed.
      assert mode == 'negative', operation.label
      assert not list(operation.body), operation.label
      continue
    fuzzed.append(operation.label)

  assert any('predict' in label for label in fuzzed), fuzzed
