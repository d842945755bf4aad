"""Test sets from the ``testsets`` config group (conf/testsets/): named sets in one folder layout.

``conf/testsets/benchmark.yaml`` is the EDSR layout (``<benchmark_dir>/<set>/HR`` and
``<benchmark_dir>/<set>/LR_bicubic/X<s>``). The data configs put a ``testsets`` option at
``data.test`` (the sets a training run is tested on; ``data.test.sets=[Set5]``), and ``eval.py``
at its top level (``sets=[...]``, ``benchmark_dir=...``). A set without its LR files gets LR made from
HR by the MATLAB-exact bicubic (:func:`lit_sisr.data.datasets.lr_source`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from lit_sisr.data.datasets import ImageSet


def named_sets(sets: Sequence[str], benchmark_dir: str, scale: int, hr_dir: str = "{benchmark_dir}/{set}/HR",
              lr_dir: str | None = "{benchmark_dir}/{set}/LR_bicubic/X{scale}") -> list[ImageSet]:
    """One :class:`ImageSet` per name in ``sets``; ``hr_dir`` and ``lr_dir`` are patterns of
    ``{benchmark_dir}``, ``{set}`` and ``{scale}`` (``lr_dir`` null: LR always made from HR)."""
    if isinstance(sets, str):
        sets = [sets]
    fields = lambda name: {"benchmark_dir": benchmark_dir, "set": name, "scale": scale}  # noqa: E731
    return [ImageSet(name=name, hr_dir=hr_dir.format(**fields(name)),
                     lr_dir=lr_dir.format(**fields(name)) if lr_dir else None) for name in sets]


def as_image_sets(test: Mapping[str, Any] | Sequence[ImageSet | Mapping[str, Any]], scale: int) -> list[ImageSet]:
    """Test sets as :class:`ImageSet`s: from a ``testsets`` config (``sets``, ``benchmark_dir``,
    ``hr_dir``, ``lr_dir``: :func:`named_sets`) or from a list of :class:`ImageSet` specs."""
    if isinstance(test, Mapping):
        return named_sets(scale=scale, **test)
    return [t if isinstance(t, ImageSet) else ImageSet(**t) for t in test]
