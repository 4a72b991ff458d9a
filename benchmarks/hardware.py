"""One line that says what a timing was measured on (printed next to it)."""

import os
import platform

from models import runtime


def describe() -> str:
  """CPU model, AVX2/AVX-512, cores, oneDNN setting, load, Python."""
  onednn = os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'TF default')
  isa = os.environ.get('ONEDNN_MAX_CPU_ISA')
  return (f'{runtime.cpu()}, oneDNN {onednn}'
          + (f' (ONEDNN_MAX_CPU_ISA={isa})' if isa else '')
          + f', load {os.getloadavg()[0]:.2f}, Python '
          f'{platform.python_version()}')


def _cpu_ticks() -> dict:
  """Machine-wide CPU time since boot by kind (/proc/stat, clock ticks)."""
  with open('/proc/stat') as f:
    values = [int(v) for v in f.readline().split()[1:9]]
  user, nice, system, idle, iowait, irq, softirq, steal = values
  return {'busy': user + nice + system + irq + softirq, 'idle': idle + iowait,
          'steal': steal}


class CpuShare:
  """Where the machine's CPU time went between `__init__` and `shares()`:
  to this process (and its children), to other processes, idle, or stolen
  by the hypervisor.

  Why: on a shared 2-core VM a run's epochs vary by a tenth or more (54-87 s
  for the same network on one day, README "On a 2-core AVX2 machine"); a
  timing means little unless it says whether the process had both cores to
  itself, and when it had, a slow run has a cause inside the process (that
  day's first run: oneDNN half on).
  """

  def __init__(self):
    self._ticks = _cpu_ticks()
    self._own = self._own_seconds()

  @staticmethod
  def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

  def shares(self) -> dict:
    """Fractions of all cores' time: this process, others, idle, steal."""
    now = _cpu_ticks()
    delta = {k: now[k] - self._ticks[k] for k in now}
    total = sum(delta.values()) or 1
    own = (self._own_seconds() - self._own) * os.sysconf('SC_CLK_TCK')
    own = min(own, delta['busy'])
    return {'this process': own / total,
            'other processes': (delta['busy'] - own) / total,
            'idle': delta['idle'] / total, 'steal': delta['steal'] / total}


def describe_shares(shares: dict) -> str:
  return ', '.join(f'{k} {100 * v:.0f} %' for k, v in shares.items())
