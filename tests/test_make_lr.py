"""``python -m lit_sisr.data.make_lr``: the EDSR LR files of an HR-only set, bit for bit, and
one ``error:`` line with nothing written for a bad folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from lit_sisr.data.make_lr import main, make_lr

from refdata import BENCHMARK, need


def stored_pixels(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_shared_lr_file_is_reproduced_from_hr_alone(tmp_path: Path) -> None:
    root = need(BENCHMARK, "benchmark sets")
    checked = 0
    for name in ("Set5", "Set14", "B100"):
        shutil.copytree(root / name / "HR", tmp_path / name / "HR")
        assert make_lr(tmp_path / name, (2, 3, 4), progress=False)["present"] == 0
        for scale in (2, 3, 4):
            shared = sorted((root / name / "LR_bicubic" / f"X{scale}").glob("*.png"))
            made = sorted((tmp_path / name / "LR_bicubic" / f"X{scale}").iterdir())
            assert [p.name for p in made] == [p.name for p in shared]
            for ours, theirs in zip(made, shared):
                mode, pixels = stored_pixels(theirs)
                assert stored_pixels(ours)[0] == mode, ours  # grey stays grey (Set14)
                assert np.array_equal(stored_pixels(ours)[1], pixels), ours
                checked += 1
        assert not (tmp_path / name / ".make_lr.tmp").exists()
    assert checked == 357  # 119 images at x2, x3, x4

    # the shared folders themselves hold identical files: nothing to write, nothing changed
    shutil.copytree(root / "Set5", tmp_path / "Set5copy")
    before = tree(tmp_path / "Set5copy")
    assert make_lr(tmp_path / "Set5copy", (2, 3, 4), progress=False) == {"written": 0, "present": 15}
    assert tree(tmp_path / "Set5copy") == before


def _toy_set(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    (folder / "HR").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (13, 10, 3), dtype=np.uint8)).save(folder / "HR" / "a.png")
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(folder / "HR" / "b.png")
    return folder


def test_sizes_names_and_a_second_run(tmp_path: Path, capsys) -> None:
    toy = _toy_set(tmp_path / "Toy")
    assert main([str(toy), "--scales", "2", "3"]) == 0
    assert "wrote 4 LR images, 0 already present" in capsys.readouterr().out
    sizes = {str(p.relative_to(toy)): Image.open(p).size for p in sorted((toy / "LR_bicubic").rglob("*.png"))}
    # modcrop to a multiple of the scale, then 1/s: 10x13 -> 5x6 (x2), 3x4 (x3)
    assert sizes == {
        "LR_bicubic/X2/ax2.png": (5, 6),
        "LR_bicubic/X2/bx2.png": (6, 6),
        "LR_bicubic/X3/ax3.png": (3, 4),
        "LR_bicubic/X3/bx3.png": (4, 4),
    }
    assert Image.open(toy / "LR_bicubic/X2/bx2.png").mode == "L"
    assert main([str(toy), "--scales", "2", "3", "4"]) == 0  # x4 added, x2/x3 left alone
    assert "wrote 2 LR images, 4 already present" in capsys.readouterr().out


def test_bad_folders_end_in_one_error_line_and_write_nothing(tmp_path: Path, capsys) -> None:
    def fails(args: list[str], message: str) -> None:
        before = tree(tmp_path)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
        assert tree(tmp_path) == before

    (tmp_path / "NoHR").mkdir()
    fails([str(tmp_path / "NoHR")], "NoHR: no HR folder")
    (tmp_path / "Empty" / "HR").mkdir(parents=True)
    (tmp_path / "Empty" / "HR" / "notes.txt").write_text("not an image")
    fails([str(tmp_path / "Empty")], f"no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff) in {tmp_path / 'Empty' / 'HR'}")

    toy = _toy_set(tmp_path / "Toy")
    fails([str(toy), "--scales", "1"], "--scales 1: expected integer scales of 2 or more")
    # a different LR file already there: refused, named, and none of the other files written
    (toy / "LR_bicubic" / "X3").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(toy / "LR_bicubic" / "X3" / "bx3.png")
    fails([str(toy), "--scales", "2", "3"], f"{toy / 'LR_bicubic' / 'X3' / 'bx3.png'} already exists and differs")
    assert not (toy / "LR_bicubic" / "X2").exists()
    # an unreadable HR image is named; an image smaller than the scale too
    (toy / "LR_bicubic" / "X3" / "bx3.png").unlink()
    (toy / "HR" / "c.png").write_bytes(b"not a png")
    fails([str(toy), "--scales", "2"], f"{toy / 'HR' / 'c.png'}: unreadable or truncated image")
    (toy / "HR" / "c.png").unlink()
    Image.fromarray(np.zeros((2, 5, 3), np.uint8)).save(toy / "HR" / "c.png")
    fails([str(toy), "--scales", "3"], f"{toy / 'HR' / 'c.png'}: 5x2 is smaller than the scale 3")
