"""One line that says what a timing was measured on (printed next to it)."""

import os
import platform


def describe() -> str:
  """CPU model, AVX2/AVX-512, cores, oneDNN setting, load, Python."""
  cpu = '?'
  flags = ''
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name') and cpu == '?':
          cpu = line.split(':', 1)[1].strip()
        if line.startswith('flags') and not flags:
          have = line.split()
          flags = ' '.join(x for x in ('avx2', 'avx512f') if x in have)
  except OSError:
    pass
  onednn = os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'TF default')
  isa = os.environ.get('ONEDNN_MAX_CPU_ISA')
  return (f'{cpu} [{flags}], {os.cpu_count()} cores, oneDNN {onednn}'
          + (f' (ONEDNN_MAX_CPU_ISA={isa})' if isa else '')
          + f', load {os.getloadavg()[0]:.2f}, Python '
          f'{platform.python_version()}')
