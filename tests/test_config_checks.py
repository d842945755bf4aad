"""The user-error table (lit_sisr.config_checks.CHECKS, docs/errors.md): every row refuses its wrong
value with one line naming the option and the value; the real command lines exit 2 with a single
``error:`` line and leave an earlier run's folder byte-identical (checked before Hydra makes it).

Rows are checked in-process (configs composed with Hydra's compose API); a representative few,
one per entry point, run as real command lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from lit_sisr.cli_errors import user_error_message
from lit_sisr.config_checks import CHECKS, DOC_BEGIN, DOC_END, check_config, markdown_table
from lit_sisr.errors import ConfigError, UserError

from refdata import REPO


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, Path]:
    """A regular file (for paths under it), an image, and an empty cache (no demo photos made)."""
    root = tmp_path_factory.mktemp("checks")
    (root / "afile").write_text("not a folder")
    Image.new("RGB", (8, 8)).save(root / "a.png")
    return {"root": root, "file": root / "afile", "image": root / "a.png"}


def base(task: str, place: dict[str, Path]) -> list[str]:
    """A configuration of ``task`` that passes every check."""
    return {
        "train": ["debug=smoke"],
        "eval": ["model=bicubic", "attention=none"],
        "predict": [f"input={place['image']}", f"output={place['root'] / 'out'}"],
    }[task]


def compose_cfg(task: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name=task, overrides=overrides, return_hydra_config=True)


CASES = [(row, task) for row in CHECKS for task in row.tasks]


def test_the_good_configurations_pass(place, monkeypatch) -> None:
    monkeypatch.setenv("LIT_SISR_CACHE", str(place["root"] / "cache"))
    for task in ("train", "eval", "predict"):
        check_config(compose_cfg(task, base(task, place)), task)


@pytest.mark.parametrize(("row", "task"), CASES, ids=[f"{task}-{row.option}={row.bad}" for row, task in CASES])
def test_each_row_refuses_its_wrong_value_in_one_line(row, task, place, monkeypatch) -> None:
    monkeypatch.setenv("LIT_SISR_CACHE", str(place["root"] / "cache"))
    bad = row.bad.replace("<file>", str(place["file"]))
    cfg = compose_cfg(
        task, base(task, place) + list(row.needs) + [f"++{row.option}={bad}"]
    )  # ++: also options the config leaves unset
    with pytest.raises(ConfigError) as err:
        check_config(cfg, task, multirun=True)  # multirun: the DDP-in-a-sweep row applies too
    message = user_error_message(err.value)
    assert isinstance(err.value, UserError) and message == str(err.value) and "\n" not in message
    assert message.startswith(f"{row.label or row.option}={bad}"), message
    # each message says what is accepted
    assert "expected" in message, message


def test_docs_list_the_table() -> None:
    text = (REPO / "docs" / "errors.md").read_text()
    assert DOC_BEGIN in text and DOC_END in text
    listed = text[text.index(DOC_BEGIN) : text.index(DOC_END) + len(DOC_END)]
    assert listed == markdown_table(), "docs/errors.md is stale: paste `python -m lit_sisr.config_checks` into it"


def test_more_ddp_processes_than_validation_images_are_refused_before_any_process(place, monkeypatch) -> None:
    monkeypatch.setenv("LIT_SISR_CACHE", str(place["root"] / "cache"))
    cfg = compose_cfg("train", ["debug=smoke", "trainer.devices=3"])  # smoke validation: 2 images
    with pytest.raises(
        ConfigError,
        match=r"^trainer.devices=3 starts 3 processes but evaluation set smoke_val "
        r"has 2 image\(s\); expected at most 2",
    ):
        check_config(cfg, "train")
    check_config(compose_cfg("train", ["debug=smoke", "trainer.devices=2"]), "train")


# -- the real command lines ----------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def earlier_run(folder: Path) -> Path:
    """An earlier run's folder, as a finished run leaves it."""
    for name, text in {
        ".hydra/config.yaml": "seed: 123\n",
        "config.yaml": "seed: 123\n",
        "train.log": "epoch 0\n",
        "csv/metrics.csv": "epoch,step,val/psnr\n0,1,20.5\n",
        "checkpoints/last.ckpt": "x",
        "done.json": "{}\n",
    }.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def cli(script: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LIT_SISR_DEBUG")}
    return subprocess.Popen(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_command_lines_exit_2_with_one_line_and_touch_nothing(tmp_path: Path, place) -> None:
    env = {"LIT_SISR_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"}
    run = earlier_run(tmp_path / "logs" / "train" / "runs" / "imdn-bam-x2-seed123-demo")
    evaluated = earlier_run(tmp_path / "logs" / "eval" / "runs" / "bicubic-none-x2")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_x2.png").write_bytes(b"an earlier result")
    before = snapshot(tmp_path)
    cases = {  # started side by side (each pays the torch import), then read one by one
        "train.py data.batch_size=0": "error: data.batch_size=0: expected an integer >= 1",
        "train.py trainer.devices=3": "error: trainer.devices=3 starts 3 processes but evaluation set smoke_val",
        "eval.py model=bicubic attention=none sets=Set5": "error: sets=Set5: expected a list of benchmark set names",
        f"predict.py input={place['image']} output=out device=cuda:99": "error: device=cuda:99 but this machine has",
    }
    procs = {
        case: cli(
            case.split()[0],
            *(["debug=smoke"] if case.startswith("train") else []),
            *case.split()[1:],
            cwd=tmp_path,
            env=env,
        )
        for case in cases
    }
    for case, proc in procs.items():
        _, stderr = proc.communicate(timeout=600)
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 2 and "Traceback" not in stderr and len(errors) == 1, (case, stderr)
        assert errors[0].startswith(cases[case]), (case, errors[0])
    assert snapshot(tmp_path) == before  # nothing new, nothing changed: the checks ran before Hydra's folder
    assert run.is_dir() and evaluated.is_dir()
