"""The exploration's PNGs (matplotlib, in the style of pipeline/report.py)."""

from typing import Dict

import matplotlib
matplotlib.use('Agg')  # files only, no display
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
import numpy as np

from models import features
from pipeline import report
from pipeline.explore import embedding

_COLORS = plt.get_cmap('tab10').colors


def class_balance(counts: Dict[str, np.ndarray], path: str) -> None:
  """Images per class, one bar group per class, one bar per split."""
  fig, ax = plt.subplots(figsize=(11, 4))
  width = 0.8 / max(1, len(counts))
  x = np.arange(features.NUM_CLASSES)
  for k, (split, c) in enumerate(counts.items()):
    ax.bar(x + (k - (len(counts) - 1) / 2) * width, c, width,
           label=f'{split} ({c.sum()})')
  ax.set_xticks(x, features.CLASS_NAMES, rotation=30, ha='right')
  ax.set_ylabel('images')
  ax.set_ylim(0, 1.25 * max(c.max() for c in counts.values()))  # legend room
  ax.legend(ncol=len(counts), loc='upper center')
  ax.grid(axis='y', alpha=0.3)
  ax.set_title('Class balance per split')
  fig.tight_layout()
  report.save_png(fig, path)


def mean_std_grid(images: embedding.ClassImages, path: str) -> None:
  """Row 1: mean image per class; row 2: per-pixel standard deviation."""
  fig, axes = plt.subplots(2, features.NUM_CLASSES, figsize=(12, 3.1))
  for c in range(features.NUM_CLASSES):
    axes[0, c].imshow(images.mean[c], cmap='gray_r', vmin=0, vmax=1)
    axes[1, c].imshow(images.std[c], cmap='magma', vmin=0, vmax=0.5)
    axes[0, c].set_title(features.CLASS_NAMES[c], fontsize=9)
    for row in (0, 1):
      axes[row, c].axis('off')
  axes[0, 0].text(-4, 14, 'mean', rotation=90, va='center', ha='right')
  axes[1, 0].text(-4, 14, 'std', rotation=90, va='center', ha='right')
  fig.tight_layout()
  report.save_png(fig, path)


def scatter(points: np.ndarray, labels: np.ndarray, title: str, path: str,
            xlabel: str = '', ylabel: str = '') -> None:
  """2-D points coloured by class."""
  fig, ax = plt.subplots(figsize=(9, 7))
  size = 2 if len(points) > 5000 else 6
  # One scatter in random order, so no class is painted over the others.
  order = np.random.default_rng(0).permutation(len(points))
  colors = np.array(_COLORS)[labels[order]]
  ax.scatter(points[order, 0], points[order, 1], s=size, c=colors, alpha=0.6,
             linewidths=0)
  handles = [Line2D([], [], marker='o', ls='', color=col, label=name)
             for col, name in zip(_COLORS, features.CLASS_NAMES)]
  ax.legend(handles=handles, fontsize=8, loc='upper left',
            bbox_to_anchor=(1.01, 1))
  ax.set_title(title)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  fig.tight_layout()
  report.save_png(fig, path)


def similarity(matrix: np.ndarray, path: str) -> None:
  """Class-to-class cosine similarity heatmap, with values."""
  fig, ax = plt.subplots(figsize=(8, 7))
  ax.imshow(matrix, cmap='RdBu_r', vmin=-1, vmax=1)
  ticks = report.label_class_axes(ax)
  ax.set_xlabel('class')
  ax.set_ylabel('class')
  for i in ticks:
    for j in ticks:
      ax.text(j, i, f'{matrix[i, j]:.2f}', ha='center', va='center',
              fontsize=7, color='white' if abs(matrix[i, j]) > 0.6
              else 'black')
  ax.set_title('Cosine similarity of class means (PCA-50, centred)')
  fig.tight_layout()
  report.save_png(fig, path)


def distance_histogram(nearest: np.ndarray, threshold: float,
                       path: str) -> None:
  """Nearest-train distance of each test image, log scale, with the cut."""
  fig, ax = plt.subplots(figsize=(9, 4))
  positive = nearest[nearest > 0]
  low = min(threshold / 2, positive.min()) if positive.size else 0.01
  bins = np.logspace(np.log10(max(low, 1e-3)),
                     np.log10(max(nearest.max(), threshold) * 1.05), 60)
  ax.hist(np.maximum(nearest, bins[0]), bins=bins, color='#57606a')
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.axvline(threshold, color='#cf222e', lw=1.5,
             label=f'near-duplicate threshold {threshold:.3f}')
  ax.set_xlabel('Euclidean distance to the nearest train image (pixels in '
                '[0, 1]; exact duplicates drawn at the left edge)')
  ax.set_ylabel('test images')
  ax.legend()
  ax.set_title('How close each test image is to the training set')
  fig.tight_layout()
  report.save_png(fig, path)
