"""The drift baseline is the newest healthy window, not the newest window."""

import os

from monitor_testenv import summaries, write_logs  # pylint: disable=g-bad-import-order
from monitoring import config as config_lib

N = 500


def test_recovery_is_not_drift(home, monitor, test_images):
  images, labels = test_images
  log_dir = os.path.join(home, 'request_logs')
  write_logs(log_dir, images[:N], labels[:N], timestamp=1_700_000_000)
  assert monitor()[0] == config_lib.EXIT_HEALTHY
  write_logs(log_dir, 255 - images[N:2 * N], labels[N:2 * N],
             timestamp=1_700_000_100)
  assert monitor('--last', str(N))[0] == config_lib.EXIT_UNHEALTHY
  # Normal traffic again: compared with the last healthy window, not with
  # the inverted one, so nothing drifted.
  write_logs(log_dir, images[2 * N:3 * N], labels[2 * N:3 * N],
             timestamp=1_700_000_200)
  status, out, _ = monitor('--last', str(N))
  assert status == config_lib.EXIT_HEALTHY, out
  healthy, _, recovered = summaries(home)
  assert recovered['previous_run'] == healthy['stamp']
  assert {m['check'] for m in recovered['measurements']} == {'skew', 'drift'}
