"""Process-wide TensorFlow settings that must be chosen before TF is imported.

oneDNN (TF_ENABLE_ONEDNN_OPTS) is read once, when TensorFlow is first
imported. TF 2.16 turns it on by default only on CPUs with AVX-512/AMX; on an
AVX2-only CPU it stays off, and a training step of the default CNN is ~2.2x
slower there (683 vs. 307 ms at batch 128, issue 10). But oneDNN makes
batch-1 inference slower on the same CPU (3.8 -> 21.5 ms per image), which
is what the proxy mostly runs. So the commands that train (the Trainer runs
in `fmnist pipeline run`'s process under LocalDagRunner) ask for it on, and
`fmnist serve` asks for it off. A value the user set wins; on Vertex the
pipeline image's Dockerfile sets it for the Trainer's container.
benchmarks/onednn.py measures both sides on the machine at hand.
"""

import logging
import os
import sys

ONEDNN_ENV = 'TF_ENABLE_ONEDNN_OPTS'

_log = logging.getLogger(__name__)


def prefer_onednn(enabled: bool) -> str:
  """Sets oneDNN on or off for this process unless the user chose already.

  Returns the value in effect. Must run before TensorFlow is imported; if it
  is imported already (a caller in the same process, e.g. a notebook or a
  test) the setting cannot change: 'unchanged', logged at debug level.
  """
  wanted = '1' if enabled else '0'
  if ONEDNN_ENV in os.environ:
    return os.environ[ONEDNN_ENV]
  if 'tensorflow' in sys.modules:
    _log.debug('TensorFlow is already imported: %s=%s has no effect',
                 ONEDNN_ENV, wanted)
    return 'unchanged'
  os.environ[ONEDNN_ENV] = wanted
  return wanted
