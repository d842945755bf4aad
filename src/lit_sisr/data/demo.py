"""The embedded default data set: scikit-image's bundled sample photos, no download.

``python train.py`` trains on it so a fresh install runs end to end. The photos are written as
PNG files under a cache folder once, so the demo goes through the same file-reading path as real
data. Splits are disjoint: validation is never a test image.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

# skimage.data loaders whose files ship inside the scikit-image wheel.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel"),
    "val": ("coffee",),
    "test": ("chelsea", "camera"),
}


def ensure_demo_images(root: str | Path) -> Path:
    """Write the demo splits as ``<root>/<split>/<name>.png`` (only the missing files)."""
    import skimage.data

    root = Path(root)
    for split, names in SPLITS.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / f"{name}.png"
            if target.is_file():
                continue
            img = np.asarray(getattr(skimage.data, name)())
            if img.ndim == 3 and img.shape[2] == 4:
                img = img[..., :3]
            # Written to a temporary file and renamed: a killed run never leaves a half PNG.
            fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
            os.close(fd)
            Image.fromarray(img).save(tmp)
            os.replace(tmp, target)
    return root
