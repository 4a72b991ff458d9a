"""A wall-clock budget for the Trainer's fit (`ModelConfig.train_minutes`).

Why: the default's 28 epochs take 45-87 s each on a 2-core AVX2 machine
(27.6-32.4 minutes of pipeline) and 28-38 s on a faster one, and no
network measured was as accurate for less compute (README "Results"). A
budget makes the run's length a promise instead: on a machine where all
epochs fit, nothing changes; on a slower one the run trains the epochs that
fit, with the cosine schedule annealed over those (a run merely stopped
mid-way through its planned schedule would end at a high learning rate,
the thing an annealed schedule is there to avoid).

The plan is made from measured epochs, as they go, not from a benchmark up
front: the first epoch (tracing, warm caches) is left out of the estimate,
and the plan follows the mean of the others, so a slow spell early does not
cost the epochs a faster one later allows (a first version fixed the plan
when it shrank and left 1.6 of 17 minutes unused on the AVX2 machine). The
learning rate never goes back up when the plan grows: the schedule holds
its rate until the longer plan's curve comes down to it (models/model.py).
With the epoch-wise cosine schedule the warm-up epoch and the first cosine
epoch are the same whatever the plan.
"""

import time
from typing import Any, Callable, Dict, List, Optional

import tf_keras as keras

RECORD_FILE = 'time_budget.json'


class TimeBudget(keras.callbacks.Callback):
  """Plans how many of `epochs` fit in `minutes` of fit and stops there.

  `planned_epochs` is what the LR schedule anneals over; after each epoch it
  becomes the epochs done + the whole epochs that fit in the time left at
  the mean length of the epochs after the first, at most `epochs`. Epochs
  vary by about +-15 % on a busy VM, so the budget holds to about that
  share of one epoch.
  """

  def __init__(self, minutes: float, epochs: int,
               clock: Callable[[], float] = time.monotonic):
    super().__init__()
    self.minutes = minutes
    self.configured_epochs = epochs
    self.planned_epochs = epochs
    self._clock = clock
    self._start = None
    self._epoch_start = None
    self.durations: List[float] = []

  def on_train_begin(self, logs=None):
    self._start = self._clock()

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = self._clock()

  def on_epoch_end(self, epoch, logs=None):
    now = self._clock()
    self.durations.append(now - self._epoch_start)
    done = epoch + 1
    left = self.minutes * 60 - (now - self._start)
    steady = self._steady_seconds()
    if steady is not None:
      fits = done + int(left // steady)
    else:
      # After the first epoch only stop if even it, tracing and all, would
      # not fit again; its length overstates the others'.
      fits = done if left < self.durations[0] else self.configured_epochs
    self.planned_epochs = max(done, min(self.configured_epochs, fits))
    if done >= self.planned_epochs:
      self.model.stop_training = True

  def _steady_seconds(self) -> Optional[float]:
    """The mean length of the epochs after the first, None before there
    is one."""
    steady = self.durations[1:]
    return sum(steady) / len(steady) if steady else None

  def record(self) -> Dict[str, Any]:
    """What the run summary and report say about the budget."""
    trained = len(self.durations)
    per_epoch = self._steady_seconds()
    if per_epoch is None:
      per_epoch = self.durations[0] if self.durations else 0.0
    how = f'{trained} of {self.configured_epochs} epochs fit'
    if trained >= self.configured_epochs:
      how += ', the whole schedule'
    return {
        'minutes': self.minutes,
        'configured_epochs': self.configured_epochs,
        'planned_epochs': self.planned_epochs,
        'trained_epochs': trained,
        'epoch_seconds': [round(d, 1) for d in self.durations],
        'seconds': round(sum(self.durations), 1),
        'reason': (f'a {self.minutes:g}-minute training budget: {how} '
                   f'({per_epoch:.0f} s per epoch after the first, '
                   f'{sum(self.durations) / 60:.1f} minutes in all)'),
    }
