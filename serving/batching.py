"""Server-side micro-batching: concurrent requests share one model call.

One worker task owns the model thread. When the model is free it takes every
queued request (up to `max_batch_size` images) and runs them as one batch, so
batches form naturally under load while a lone request goes straight through.
It waits up to `max_wait_s` for more only when `pending()` says requests are
already in flight (e.g. still being parsed): a bounded wait that a request
arriving alone never pays.
"""

import asyncio
import collections
import concurrent.futures
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

import numpy as np

_Item = Tuple[np.ndarray, asyncio.Future]


class MicroBatcher:
  """Runs `fn(pixels[M, 784])` on batches; each caller gets its rows back."""

  def __init__(self, fn: Callable[[np.ndarray], Any], max_batch_size: int,
               max_wait_s: float, pending: Callable[[], int] = lambda: 0,
               on_batch: Optional[Callable[[int], None]] = None):
    self._fn = fn
    self._max_batch_size = max_batch_size
    self._max_wait_s = max_wait_s
    self._pending = pending
    self._on_batch = on_batch or (lambda n: None)
    self._queue: Deque[_Item] = collections.deque()
    self._wakeup: Optional[asyncio.Event] = None
    self._task: Optional[asyncio.Task] = None
    # One thread: batches run one at a time, which is what lets them grow.
    self._executor = concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix='model')

  async def start(self) -> None:
    self._wakeup = asyncio.Event()
    self._task = asyncio.get_running_loop().create_task(self._run())

  async def close(self) -> None:
    if self._task is not None:
      self._task.cancel()
      try:
        await self._task
      except asyncio.CancelledError:
        pass
      self._task = None
    for _, fut in self._queue:
      if not fut.done():
        fut.cancel()
    self._queue.clear()
    self._executor.shutdown(wait=True)

  async def submit(self, pixels: np.ndarray) -> Tuple[Any, int, int]:
    """Queues `pixels` [n, 784]; returns (batch result, start row, stop row)."""
    if self._task is None:
      raise RuntimeError('MicroBatcher.start() was not called')
    fut = asyncio.get_running_loop().create_future()
    self._queue.append((pixels, fut))
    self._wakeup.set()
    return await fut

  def _take(self) -> List[_Item]:
    batch, rows = [], 0
    while self._queue:
      pixels, fut = self._queue[0]
      if fut.done():  # the client went away while queued
        self._queue.popleft()
        continue
      if batch and rows + len(pixels) > self._max_batch_size:
        break
      batch.append(self._queue.popleft())
      rows += len(pixels)
    return batch

  async def _gather_more(self, batch: List[_Item]) -> List[_Item]:
    deadline = time.monotonic() + self._max_wait_s
    while (sum(len(p) for p, _ in batch) < self._max_batch_size
           and self._pending() > len(batch) + len(self._queue)):
      remaining = deadline - time.monotonic()
      if remaining <= 0:
        break
      self._wakeup.clear()
      try:
        await asyncio.wait_for(self._wakeup.wait(), remaining)
      except asyncio.TimeoutError:
        break
    rows = sum(len(p) for p, _ in batch)
    while self._queue and rows + len(self._queue[0][0]) <= self._max_batch_size:
      item = self._queue.popleft()
      if not item[1].done():
        batch.append(item)
        rows += len(item[0])
    return batch

  async def _run(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      await self._wakeup.wait()
      self._wakeup.clear()
      while self._queue:
        batch = self._take()
        if not batch:
          continue
        if self._max_wait_s > 0:
          batch = await self._gather_more(batch)
        pixels = (batch[0][0] if len(batch) == 1 else
                  np.concatenate([p for p, _ in batch]))
        self._on_batch(len(pixels))
        try:
          result = await loop.run_in_executor(self._executor, self._fn, pixels)
        except Exception as e:  # pylint: disable=broad-except
          for _, fut in batch:
            if not fut.done():
              fut.set_exception(e)
          continue
        start = 0
        for p, fut in batch:
          if not fut.done():
            fut.set_result((result, start, start + len(p)))
          start += len(p)
