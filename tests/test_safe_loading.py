"""Safe loading: weight files are read with ``weights_only=True``; a pickle that would run code is
refused before any of it runs; no eval/exec of configuration anywhere."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch

from lit_sisr.backbones import build_backbone
from lit_sisr.weights import WeightsError, load_network, load_official_weights, read_state

from refdata import REPO


class CallsSystem:
    """Unpickling this calls ``os.system`` (the case torch words differently from ``open``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    net = build_backbone("imdn", 2, "none", n_feats=8, n_blocks=1)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    zipped = tmp_path / "evil.ckpt"  # torch.save's zip format, as a lit-sisr checkpoint would look
    torch.save({"state_dict": state, "hyper_parameters": {"config": CreatesMarker(marker)}}, zipped)
    legacy = tmp_path / "evil.pth"  # a plain (legacy, non-zip) pickle
    with legacy.open("wb") as f:
        pickle.dump({"params": CreatesMarker(marker)}, f, protocol=2)

    system = tmp_path / "system.ckpt"  # os.system, zip format
    torch.save({"state_dict": state, "hyper_parameters": {"config": CallsSystem(marker)}}, system)
    system_legacy = tmp_path / "system.pth"  # os.system in a protocol-4 pickle (STACK_GLOBAL)
    with system_legacy.open("wb") as f:
        pickle.dump({"params": CallsSystem(marker)}, f, protocol=4)

    cases = [
        (zipped, read_state, "open"),
        (zipped, lambda p: load_network(p, "checkpoint"), "open"),
        (legacy, lambda p: load_official_weights(net, p), "open"),
        (system, read_state, "system"),
        (system_legacy, lambda p: load_official_weights(net, p), "system"),
    ]
    for path, load, callable_name in cases:
        with pytest.raises(WeightsError) as err:
            load(path)
        message = str(err.value)
        assert message.startswith(f"{path}: refused to load: unpickling it would call "), message
        assert callable_name in message and "may run code" in message and "\n" not in message
    assert not marker.exists()


def test_plain_checkpoints_still_load(tmp_path: Path) -> None:
    net = build_backbone("imdn", 2, "none", n_feats=8, n_blocks=1)
    path = tmp_path / "ok.ckpt"
    model = {
        "_target_": "lit_sisr.backbones.build_backbone",
        "name": "imdn",
        "scale": 2,
        "n_feats": 8,
        "n_blocks": 1,
        "attention": {"_target_": "lit_sisr.attention.AttentionFactory", "name": "none"},
    }
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"config": {"model": model, "attention": {"name": "none"}, "scale": 2}},
        },
        path,
    )
    loaded = load_network(path, "checkpoint")
    assert loaded.config["scale"] == 2 and loaded.scale == 2
    other = loaded.net.state_dict()
    assert other.keys() == net.state_dict().keys()
    assert all(torch.equal(a, other[k]) for k, a in net.state_dict().items())


def _package_sources() -> list[Path]:
    return sorted((REPO / "src" / "lit_sisr").rglob("*.py")) + [REPO / n for n in ("train.py", "eval.py", "report.py")]


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Call)]


def test_no_eval_or_exec_and_every_load_is_weights_only() -> None:
    """The builtins eval/exec are never called (``net.eval()`` is a method, not the builtin); every
    ``torch.load`` passes ``weights_only=True``, and nothing passes ``weights_only=False``
    (Lightning's ``trainer.fit/test(..., weights_only=...)`` included)."""
    problems = []
    for path in _package_sources():
        for call in _calls(path):
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            if isinstance(call.func, ast.Name) and call.func.id in ("eval", "exec"):
                problems.append(f"{where}: {call.func.id}()")
            flags = {k.arg: k.value for k in call.keywords}
            if "weights_only" in flags and not (
                isinstance(flags["weights_only"], ast.Constant) and flags["weights_only"].value is True
            ):
                problems.append(f"{where}: weights_only={ast.unparse(flags['weights_only'])}")
            is_torch_load = (
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "load"
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "torch"
            )
            if is_torch_load and "weights_only" not in flags:
                problems.append(f"{where}: torch.load without weights_only=True")
    assert not problems, problems
