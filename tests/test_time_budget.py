"""The Trainer's time budget (models/budget.py) in a real Keras fit, with a
clock the test advances: the run stops at the epochs that fit and the cosine
schedule anneals over exactly those."""

import itertools

import numpy as np
import pytest
import tf_keras as keras

from models import model as model_lib
from models.budget import TimeBudget
from models.config import ModelConfig


class EpochClock:
  """A clock that advances by the next of `durations` in each epoch: the
  budget reads it once as training begins, then as each epoch begins and
  ends."""

  def __init__(self, durations):
    self._durations = iter(durations)
    self._now = 0.0
    self._calls = 0

  def __call__(self):
    if self._calls and self._calls % 2 == 0:  # an epoch ends
      self._now += next(self._durations)
    self._calls += 1
    return self._now


def _tiny_model():
  model = keras.Sequential([keras.layers.Input((4,)),
                            keras.layers.Dense(3, activation='softmax')])
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss='sparse_categorical_crossentropy')
  return model


def _fit(cfg, budget):
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)
  return _tiny_model().fit(
      x, y, epochs=cfg.epochs, batch_size=16, verbose=0,
      callbacks=model_lib.training_callbacks(cfg, '/tmp/budget-tb', budget))


def test_a_budget_trains_the_epochs_that_fit_and_anneals_over_them():
  cfg = ModelConfig(epochs=28, learning_rate=2e-3, min_learning_rate=1e-5,
                    train_minutes=10)
  # The first epoch traces (90 s), then 60 s each: after the second epoch
  # 450 s are left, 7 more epochs fit, so 9 in all.
  budget = TimeBudget(cfg.train_minutes, cfg.epochs,
                      clock=EpochClock([90] + [60] * 40))
  history = _fit(cfg, budget)
  lrs = history.history['lr']
  assert len(lrs) == 9 and budget.planned_epochs == 9
  assert lrs[0] == pytest.approx(1e-3) and lrs[1] == pytest.approx(2e-3)
  assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
  # It ends annealed, as a planned 9-epoch run would, not cut off mid-way.
  assert lrs[-1] == pytest.approx(1e-5)
  assert lrs == pytest.approx([model_lib.cosine_learning_rate(
      ModelConfig(epochs=9, learning_rate=2e-3, min_learning_rate=1e-5), e)
      for e in range(9)])
  record = budget.record()
  assert record['trained_epochs'] == 9 and record['seconds'] <= 600
  assert record['reason'] == ('a 10-minute training budget: 9 of 28 epochs '
                              'fit (60 s per epoch after the first, 9.5 '
                              'minutes in all)')


def test_without_a_budget_or_with_room_every_epoch_trains():
  cfg = ModelConfig(epochs=5, train_minutes=60)
  budget = TimeBudget(cfg.train_minutes, cfg.epochs,
                      clock=EpochClock([100] * 5))
  assert len(_fit(cfg, budget).history['lr']) == 5
  assert 'the whole schedule' in budget.record()['reason']
  assert len(_fit(ModelConfig(epochs=5), None).history['lr']) == 5


def test_the_plan_follows_the_machines_speed_and_the_rate_never_rises():
  # Three slow epochs, then fast ones: the plan drops to 6 epochs, then
  # grows as the fast epochs pull the mean down, to 15 in all (a plan that
  # could only shrink would have stopped at 6 and left 4 minutes unused).
  budget = TimeBudget(10, 28, clock=EpochClock(
      itertools.chain([60, 100, 100, 100], itertools.repeat(20))))
  history = _fit(ModelConfig(epochs=28, learning_rate=2e-3,
                             min_learning_rate=1e-5), budget)
  lrs = history.history['lr']
  assert len(lrs) == 15 and budget.record()['seconds'] == 580
  # When the plan grew from 8 to 10 epochs (epoch 7), the longer plan's
  # curve stood above the rate already reached: the rate holds instead.
  assert lrs[7] == lrs[6]
  assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
  assert lrs[-1] == pytest.approx(1e-5)


def test_a_first_epoch_longer_than_what_is_left_is_the_only_one():
  budget = TimeBudget(1, 28, clock=EpochClock([50, 10, 10]))
  _fit(ModelConfig(epochs=28), budget)
  assert budget.record()['trained_epochs'] == 1


def test_the_plateau_schedule_stops_at_the_budget_too():
  cfg = ModelConfig(epochs=28, lr_schedule='plateau')
  budget = TimeBudget(5, 28, clock=EpochClock(itertools.repeat(60)))
  assert len(_fit(cfg, budget).history['loss']) == 5


def test_the_budget_is_no_part_of_the_recipe_and_must_be_positive():
  assert ModelConfig(train_minutes=17).recipe() == ModelConfig().recipe()
  with pytest.raises(ValueError, match='train_minutes must be >= 0'):
    ModelConfig(train_minutes=-1)
