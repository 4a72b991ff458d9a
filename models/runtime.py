"""Process-wide TensorFlow settings that must be chosen before TF is imported.

oneDNN (TF_ENABLE_ONEDNN_OPTS) must be chosen before TensorFlow is imported.
Set after the import, it takes half effect: `IsMklEnabled()` reports True,
but a training step of the default CNN is about as slow as with oneDNN off
(240 vs. 140 ms on the 2-core AVX2-only EPYC, 2026-12-07). TF 2.16 turns
it on by default only on CPUs with AVX-512/AMX; on an AVX2-only CPU it stays
off, and a training step of the default CNN is ~2.2x slower there (683 vs.
307 ms at batch 128, issue 10). But oneDNN makes batch-1 inference slower on
the same CPU (3.8 -> 21.5 ms per image), which is what the proxy mostly
runs. So the commands that train (the Trainer runs in `fmnist pipeline
run`'s process under LocalDagRunner) ask for it on, and `fmnist serve` asks
for it off. A value the user set wins; on Vertex the pipeline image's
Dockerfile sets it for the Trainer's container. benchmarks/onednn.py
measures both sides on the machine at hand.

`keras_code_as_written` is the one setting here that needs TensorFlow: it
must be in place before Keras first traces a training step.
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
  test) it is left alone: 'unchanged', logged at debug level.
  """
  wanted = '1' if enabled else '0'
  if ONEDNN_ENV in os.environ:
    return os.environ[ONEDNN_ENV]
  if 'tensorflow' in sys.modules:
    # Not set now: that would half-enable it (see the module docstring).
    # Debug, not a warning: tests and notebooks call the commands in a
    # process that imported TensorFlow long before, on purpose.
    _log.debug('TensorFlow is already imported: %s=%s is not applied',
               ONEDNN_ENV, wanted)
    return 'unchanged'
  os.environ[ONEDNN_ENV] = wanted
  return wanted


def cpu() -> str:
  """The CPU model, whether it has AVX2 / AVX-512F, and the core count, e.g.
  'AMD EPYC [avx2], 2 cores': what decides how fast training runs here
  (README "On a 2-core AVX2 machine")."""
  model, flags = '?', ''
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name') and model == '?':
          model = line.split(':', 1)[1].strip()
        if line.startswith('flags') and not flags:
          have = line.split()
          flags = ' '.join(x for x in ('avx2', 'avx512f') if x in have)
  except OSError:
    pass
  return f'{model} [{flags}], {os.cpu_count()} cores'


def machine() -> str:
  """`cpu()` and whether oneDNN is on in this process, for the line a
  command prints next to its timings. Imports TensorFlow."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  state = 'on' if _pywrap_util_port.IsMklEnabled() else 'off'
  return f'{cpu()}, oneDNN {state}'


KERAS_PACKAGE = 'tf_keras'


def keras_code_as_written() -> None:
  """Keeps AutoGraph from rewriting Keras' own code when a step is traced.

  AutoGraph leaves the `tensorflow` and `keras` packages alone but, in TF
  2.16, not `tf_keras`, the Keras 2 package TFX 1.16 trains with. So tracing
  the first training step transpiled ~350 of Keras' internal functions
  (train step, optimizer, loss and metric wrappers): the first step of the
  default CNN took 18 s, against 2 s with this rule (AMD EPYC, 2 cores,
  oneDNN on; benchmarks/first_step.py, README "The first epoch"). Keras 2
  runs as written inside tf.function (as `keras` it was always exempt); our
  own layers and loss functions are still converted, since Keras converts a
  subclassed layer's `call` and a custom loss explicitly. Idempotent.
  """
  # Imported here, not at the top: the commands import this module before
  # TensorFlow so that prefer_onednn can still take effect. Private module:
  # TF has no public API for conversion rules; TFX 1.16 pins TF 2.16.
  from tensorflow.python.autograph.core import config  # pylint: disable=g-import-not-at-top
  from tensorflow.python.autograph.core import config_lib  # pylint: disable=g-import-not-at-top
  rule = config_lib.DoNotConvert(KERAS_PACKAGE)
  if not any(isinstance(r, config_lib.DoNotConvert) and r.matches(KERAS_PACKAGE)
             for r in config.CONVERSION_RULES):
    config.CONVERSION_RULES = (rule,) + tuple(config.CONVERSION_RULES)
