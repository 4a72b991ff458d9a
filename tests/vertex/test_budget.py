"""infra/budget.sh: the budget it asks gcloud for, idempotency, bad input.

No GCP here: a stand-in `gcloud` on PATH records each call's arguments (the
script's whole interface to Cloud Billing) and answers `budgets list` in
gcloud's `value(name,displayName)` format (tab-separated).
"""

import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
SCRIPT = os.path.join(ROOT, 'infra', 'budget.sh')
FAKE_GCLOUD = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ['GCLOUD_CALLS'], 'a') as f:
  f.write(json.dumps(sys.argv[1:]) + '\\n')
if sys.argv[1:4] == ['billing', 'budgets', 'list']:
  sys.stdout.write(os.environ.get('GCLOUD_BUDGETS', ''))
"""
ACCOUNT = '012345-6789AB-CDEF01'


def _run(tmp_path, **env):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  gcloud = bin_dir / 'gcloud'
  gcloud.write_text(FAKE_GCLOUD)
  gcloud.chmod(0o755)
  calls = tmp_path / 'calls.jsonl'
  full_env = {'PATH': f'{bin_dir}:{os.environ["PATH"]}',
              'GCLOUD_CALLS': str(calls), 'BILLING_ACCOUNT': ACCOUNT,
              'PROJECT': 'my-project', 'BUDGET_AMOUNT': '50', **env}
  full_env = {k: v for k, v in full_env.items() if v is not None}
  proc = subprocess.run(['bash', SCRIPT], env=full_env, capture_output=True,
                        text=True)
  made = ([json.loads(l) for l in calls.read_text().splitlines()]
          if calls.exists() else [])
  return proc, made


def test_creates_a_monthly_project_budget_with_alerts(tmp_path):
  proc, calls = _run(tmp_path, BUDGET_PUBSUB_TOPIC='projects/p/topics/costs')
  assert proc.returncode == 0, proc.stderr
  create = calls[-1]
  assert create[:3] == ['billing', 'budgets', 'create']
  assert f'--billing-account={ACCOUNT}' in create
  assert '--display-name=fmnist-tfx my-project' in create
  assert '--budget-amount=50USD' in create
  assert '--calendar-period=month' in create
  assert '--filter-projects=projects/my-project' in create
  assert [a for a in create if a.startswith('--threshold-rule=')] == [
      '--threshold-rule=percent=0.5', '--threshold-rule=percent=0.9',
      '--threshold-rule=percent=1.0',
      '--threshold-rule=percent=1.0,basis=forecasted-spend']
  assert '--notifications-rule-pubsub-topic=projects/p/topics/costs' in create
  assert '50 USD a month for my-project' in proc.stdout


def test_an_existing_budget_of_that_name_is_left_alone(tmp_path):
  proc, calls = _run(
      tmp_path, GCLOUD_BUDGETS=(
          f'billingAccounts/{ACCOUNT}/budgets/other\tsomething else\n'
          f'billingAccounts/{ACCOUNT}/budgets/abc\tfmnist-tfx my-project\n'))
  assert proc.returncode == 0, proc.stderr
  assert [c[:3] for c in calls] == [['billing', 'budgets', 'list']]
  assert 'budgets/abc' in proc.stdout and 'left as it is' in proc.stdout


@pytest.mark.parametrize('env, message', [
    ({'BILLING_ACCOUNT': None}, 'set BILLING_ACCOUNT'),
    ({'BILLING_ACCOUNT': 'my-account'}, 'is not a billing account ID'),
    ({'BUDGET_AMOUNT': '-5'}, 'must be a positive amount'),
    ({'BUDGET_AMOUNT': '0'}, 'must be a positive amount'),
    ({'BUDGET_AMOUNT': '50 USD'}, 'must be a positive amount'),
    ({'BUDGET_CURRENCY': 'dollars'}, 'is not a currency code'),
    ({'BUDGET_THRESHOLDS': '0.5 90%'}, "threshold '90%' must be a fraction"),
    ({'BUDGET_THRESHOLDS': '', 'BUDGET_FORECAST_THRESHOLD': ''},
     'no threshold'),
    ({'BUDGET_PUBSUB_TOPIC': 'costs'}, 'must look like projects/'),
])
def test_bad_settings_are_one_error_line_and_call_nothing(tmp_path, env,
                                                          message):
  proc, calls = _run(tmp_path, **env)
  assert proc.returncode == 2
  assert proc.stderr.startswith('error: ') and message in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  assert calls == []
