"""The statistics behind the tables, as pure functions on plain numbers.

Over seeds (one run per seed): a cell's figure on a test set is the mean over seeds of each run's
dataset figure (the mean over its images), with the sample standard deviation over seeds
(``ddof=1``; undefined for one seed).

Paired comparison of two cells A and B (e.g. BAM and original) on one test set, over the images
both have and the seeds both have (``common seeds``): ``D[i, s] = A[i, s] - B[i, s]`` per image i
and seed s. The estimate is ``D.mean()``: the same as averaging each image's figure over the
common seeds first and then averaging the per-image differences, i.e. the difference of the two
cells' means over those seeds. Runs of the same seed see the same training patches (the data
pipeline is seeded by ``seed``), which is why seeds are paired.

The 95% interval is a percentile bootstrap of that mean: each of ``n_boot`` replicates draws the
images with replacement (the test set is a sample of images) and, when there are two or more
common seeds, also the seeds with replacement (training is a sample of seeds), and takes the mean
of ``D`` over the drawn rows and columns. With one seed this is the plain paired bootstrap over
images. Draws come from ``numpy.random.default_rng(seed)``: the image indices first, as one
``(n_boot, n_images)`` array, then (several seeds only) the seed indices as ``(n_boot, n_seeds)``.
The verdict: ``helps`` when the interval lies above 0, ``hurts`` when below, else
``within noise``; fewer than two images give no verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np

HELPS, HURTS, NOISE, TOO_FEW = "helps", "hurts", "within noise", "too few images"


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample std with ddof=1); std is None for fewer than two values, both for none."""
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def seed_key(seed: Hashable) -> tuple:
    """Sort key for seeds: integers in order, then anything else (None: authors' weights)."""
    return (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed))


def difference_matrix(
    a: Mapping[str, Mapping[Hashable, float]], b: Mapping[str, Mapping[Hashable, float]]
) -> tuple[list[str], list[Hashable], np.ndarray]:
    """``D[i, s] = a[image][seed] - b[image][seed]`` over the images and seeds both have.

    ``a``/``b`` map image name -> seed -> value. Images are kept when both cells have them;
    seeds when both cells have them for every kept image. Returns (images, seeds, D).
    """
    images = sorted(set(a) & set(b))
    seeds: set | None = None
    for image in images:
        both = set(a[image]) & set(b[image])
        seeds = both if seeds is None else seeds & both
    seed_list = sorted(seeds or (), key=seed_key)
    if not images or not seed_list:
        return [], [], np.zeros((0, 0))
    d = np.array([[a[i][s] - b[i][s] for s in seed_list] for i in images], dtype=np.float64)
    return images, seed_list, d


def bootstrap_ci(
    d: np.ndarray,
    n_boot: int = 10000,
    seed: int = 0,
    level: float = 0.95,
    resample_seeds: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``d.mean()`` for ``d`` of shape (images, seeds) or (images,).

    Rows (images) are always resampled; columns (seeds) too when there are several and
    ``resample_seeds``. See the module docstring for the order of the random draws.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    n, k = d.shape
    if n == 0 or k == 0:
        raise ValueError("no paired values to bootstrap")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(n_boot, n))
    if k > 1 and resample_seeds:
        cols = rng.integers(0, k, size=(n_boot, k))
        replicate = np.arange(n_boot)[:, None]
        row_counts = np.zeros((n_boot, n))
        col_counts = np.zeros((n_boot, k))
        np.add.at(row_counts, (replicate, rows), 1.0)  # how often each image / seed was drawn
        np.add.at(col_counts, (replicate, cols), 1.0)
        means = np.einsum("bi,ij,bj->b", row_counts, d, col_counts) / (n * k)
    else:
        means = d.mean(axis=1)[rows].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def verdict(low: float, high: float, n_images: int = 2) -> str:
    """``helps`` (interval above 0), ``hurts`` (below 0) or ``within noise`` (contains 0)."""
    if n_images < 2:
        return TOO_FEW
    if low > 0:
        return HELPS
    if high < 0:
        return HURTS
    return NOISE


@dataclass(frozen=True)
class Comparison:
    """A minus B on one test set (see the module docstring)."""

    mean: float
    low: float
    high: float
    n_images: int
    seeds: tuple
    verdict: str
    level: float = 0.95


def paired_comparison(
    a: Mapping[str, Mapping[Hashable, float]],
    b: Mapping[str, Mapping[Hashable, float]],
    *,
    n_boot: int = 10000,
    seed: int = 0,
    level: float = 0.95,
    resample_seeds: bool = True,
) -> Comparison | None:
    """Mean per-image difference A - B with its bootstrap interval; None without common data."""
    images, seeds, d = difference_matrix(a, b)
    if d.size == 0:
        return None
    low, high = bootstrap_ci(d, n_boot=n_boot, seed=seed, level=level, resample_seeds=resample_seeds)
    mean = float(d.mean())
    # equal differences give replicate means that differ from d.mean() by rounding only
    low, high = min(low, mean), max(high, mean)
    return Comparison(mean, low, high, len(images), tuple(seeds), verdict(low, high, len(images)), level)
