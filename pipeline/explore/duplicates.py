"""Near-duplicates between the official train images and the test images.

Exact duplicates: equal pixel bytes (a hash per image). Near duplicates:
Euclidean distance on pixels scaled to [0, 1] (784 dimensions; distance 1.0
is a root-mean-square pixel difference of 1/28, about 3.6 % of the range)
at or under a threshold taken from the data itself:

- every test image's nearest train distance is estimated from its 10 nearest
  neighbours in PCA space, re-measured on raw pixels (`nearest`);
- these distances are close to log-normal in the bulk; with the median m and
  the MAD-based sigma s of their logarithms, the threshold is
  exp(m - z s) with z chosen so that fewer than 0.5 of the n test images
  would fall below it if all came from that bulk (z = Phi^-1(1 - 0.5/n),
  3.9 for 10 000). What lies below is closer than chance explains.
- all pairs under the threshold are then found exactly: a projection onto
  PCA components never lengthens a distance, so a radius search in PCA space
  holds every pair whose pixel distance is under the threshold; each
  candidate is re-measured on pixels.
"""

import dataclasses
import hashlib
from typing import Dict, List

import numpy as np
from scipy import stats
from sklearn.neighbors import NearestNeighbors

CANDIDATES = 10  # PCA neighbours re-measured for the nearest-distance estimate
_CHUNK = 500     # test images per raw-pixel re-measurement (memory)


@dataclasses.dataclass(frozen=True)
class Pair:
  test_index: int
  train_row: int       # row in the concatenated train splits
  distance: float
  exact: bool


@dataclasses.dataclass(frozen=True)
class Duplicates:
  pairs: List[Pair]          # sorted by distance
  nearest: np.ndarray        # [n_test] nearest train distance (estimate)
  threshold: float
  z: float                   # robust z of the threshold

  @property
  def exact_pairs(self) -> int:
    return sum(p.exact for p in self.pairs)

  @property
  def test_images(self) -> int:
    return len({p.test_index for p in self.pairs})


def _hashes(images: np.ndarray) -> List[bytes]:
  return [hashlib.blake2b(x.tobytes(), digest_size=16).digest()
          for x in images]


def exact_pairs(train: np.ndarray, test: np.ndarray) -> List[tuple]:
  """(test index, train row) of byte-identical images."""
  rows: Dict[bytes, List[int]] = {}
  for row, h in enumerate(_hashes(train)):
    rows.setdefault(h, []).append(row)
  return [(i, row) for i, h in enumerate(_hashes(test))
          for row in rows.get(h, ())]


def _raw_distances(train_x, test_x, test_idx, train_rows) -> np.ndarray:
  return np.linalg.norm(test_x[test_idx][:, None, :] - train_x[train_rows],
                        axis=2)


def nearest_distances(train_x, test_x, train_z, test_z) -> np.ndarray:
  """Each test image's distance to its nearest train image (pixels), searched
  among its PCA neighbours: exact for near pairs, an upper bound otherwise."""
  k = min(CANDIDATES, len(train_z))
  _, cand = NearestNeighbors(n_neighbors=k).fit(train_z).kneighbors(test_z)
  out = np.empty(len(test_x), np.float32)
  for start in range(0, len(test_x), _CHUNK):
    idx = np.arange(start, min(start + _CHUNK, len(test_x)))
    out[idx] = _raw_distances(train_x, test_x, idx, cand[idx]).min(1)
  return out


def threshold(nearest: np.ndarray) -> tuple:
  """(threshold, z): the robust log-normal lower tail rule above."""
  logs = np.log(nearest[nearest > 0])
  if logs.size < 2:
    return 0.0, 0.0
  median = np.median(logs)
  sigma = 1.4826 * np.median(np.abs(logs - median))
  z = float(stats.norm.ppf(1 - 0.5 / len(nearest)))
  return float(np.exp(median - z * sigma)), z


def find(train_x: np.ndarray, test_x: np.ndarray, train_z: np.ndarray,
         test_z: np.ndarray, train_images: np.ndarray,
         test_images: np.ndarray) -> Duplicates:
  """Exact and near pairs; `*_x` flat [0, 1] pixels, `*_z` PCA points."""
  nearest = nearest_distances(train_x, test_x, train_z, test_z)
  limit, z = threshold(nearest)
  pairs = {(i, row): Pair(i, row, 0.0, True)
           for i, row in exact_pairs(train_images, test_images)}
  # float32 rounding may make a PCA distance exceed the pixel one by a hair.
  radius = limit * (1 + 1e-4) + 1e-6
  index = NearestNeighbors(radius=radius).fit(train_z)
  candidates = index.radius_neighbors(test_z, return_distance=False)
  for i, rows in enumerate(candidates):
    if not len(rows):
      continue
    d = _raw_distances(train_x, test_x, np.array([i]), rows[None, :])[0]
    for row, dist in zip(rows, d):
      if dist <= limit and (i, int(row)) not in pairs:
        pairs[(i, int(row))] = Pair(i, int(row), float(dist), False)
  return Duplicates(sorted(pairs.values(), key=lambda p: (p.distance,
                                                           p.test_index)),
                    nearest, limit, z)
