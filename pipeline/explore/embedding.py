"""Class summaries and 2-D embeddings of the images (scikit-learn).

Pixels are scaled to [0, 1] and flattened. PCA (50 components, fitted on all
images of the span) feeds the 2-D plots, the t-SNE (on a sample, as t-SNE is
quadratic-ish), the class similarity and the near-duplicate candidate search.
"""

import dataclasses

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from models import features

PCA_COMPONENTS = 50


def flat(images: np.ndarray) -> np.ndarray:
  """[N, 28, 28] uint8 -> [N, 784] float32 in [0, 1]."""
  return images.reshape(len(images), -1).astype(np.float32) / features.PIXEL_MAX


@dataclasses.dataclass(frozen=True)
class ClassImages:
  mean: np.ndarray   # [10, 28, 28] float in [0, 1]
  std: np.ndarray    # [10, 28, 28]
  counts: np.ndarray  # [10]


def class_images(images: np.ndarray, labels: np.ndarray) -> ClassImages:
  shape = (features.NUM_CLASSES, features.IMAGE_SIZE, features.IMAGE_SIZE)
  mean, std = np.zeros(shape), np.zeros(shape)
  counts = np.bincount(labels, minlength=features.NUM_CLASSES)
  for c in range(features.NUM_CLASSES):
    if counts[c]:
      x = images[labels == c].astype(np.float64) / features.PIXEL_MAX
      mean[c], std[c] = x.mean(0), x.std(0)
  return ClassImages(mean, std, counts)


@dataclasses.dataclass(frozen=True)
class Pca:
  points: np.ndarray       # [N, k] float32, centred
  explained: np.ndarray    # [k] explained variance ratios


def pca(x: np.ndarray, components: int = PCA_COMPONENTS, seed: int = 0) -> Pca:
  components = min(components, x.shape[0], x.shape[1])
  model = PCA(components, random_state=seed)
  points = model.fit_transform(x).astype(np.float32)
  return Pca(points, model.explained_variance_ratio_)


def sample(n: int, size: int, seed: int = 0) -> np.ndarray:
  """Sorted indices of a uniform sample of `size` rows (all if fewer)."""
  if size >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def tsne(points: np.ndarray, seed: int = 0) -> np.ndarray:
  """2-D t-SNE of PCA points (sklearn's Barnes-Hut; perplexity 30 or less
  on small samples)."""
  perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))
  return TSNE(2, perplexity=perplexity, init='pca', learning_rate='auto',
              random_state=seed).fit_transform(points)


def class_similarity(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """[10, 10] cosine similarity of the class means of centred PCA points:
  +1 same direction from the overall mean, 0 unrelated, -1 opposite."""
  means = np.zeros((features.NUM_CLASSES, points.shape[1]))
  for c in range(features.NUM_CLASSES):
    if np.any(labels == c):
      means[c] = points[labels == c].mean(0)
  norms = np.linalg.norm(means, axis=1, keepdims=True)
  unit = means / np.where(norms > 0, norms, 1)
  return unit @ unit.T
