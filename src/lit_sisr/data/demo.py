"""The embedded default data set: scikit-image's bundled sample photos, no download.

``python train.py`` trains on it so a fresh install runs end to end. The photos are written as
PNG files under a cache folder once, so the demo goes through the same file-reading path as real
data (grey photos stay grey PNGs; the reader copies the level to R, G and B). Splits are
disjoint: validation is never a test image, and neither is a training one. Every image here
ships inside the scikit-image wheel (``skimage/data/``: nothing is fetched over the network).

Training has the textures and the varied scenes (microscopy, astronomy, a text scan, a
motorbike workshop); the test set is six everyday photos (a person, a cat, a cameraman, a cup of
coffee, the moon, a rocket launch),
so the demo's "gain over bicubic" is measured on the kind of image a newcomer has in mind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("brick", "cell", "clock", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
              "motorcycle", "page", "retina", "text"),
    "val": ("coins",),
    "test": ("astronaut", "camera", "chelsea", "coffee", "moon", "rocket"),
}


def _loader(name: str) -> Callable[[], np.ndarray]:
    """The ``skimage.data`` function of ``name`` (``motorcycle``: the left view of the stereo pair)."""
    import skimage.data

    if name == "motorcycle":
        return lambda: skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)


def ensure_demo_images(root: str | Path) -> Path:
    """Write the demo splits as ``<root>/<split>/<name>.png`` (only the missing files)."""
    root = Path(root)
    for split, names in SPLITS.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / f"{name}.png"
            if target.is_file():
                continue
            img = np.asarray(_loader(name)())
            if img.ndim == 3 and img.shape[2] == 4:
                img = img[..., :3]
            # Written to a temporary file and renamed: a killed run never leaves a half PNG.
            fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
            os.close(fd)
            Image.fromarray(img).save(tmp)
            os.replace(tmp, target)
    return root
