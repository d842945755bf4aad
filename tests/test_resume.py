"""Exact resume: a run killed mid-epoch (SIGKILL, or SIGTERM with its checkpoint) and re-run ends
bit-identical to an uninterrupted run, with EMA, an epoch LR schedule, 0 or 2 DataLoader workers or
the training images on the device (data.placement=device, here the CPU)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers import RESUME, compose_train, probe, start_train, steps, wait_for

STEPS = 12


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested checkpoint content as {dotted key: leaf}."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, value in enumerate(tree) for k, v in flat(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree}


def training_state(ckpt: Path) -> dict[str, Any]:
    """Everything that determines further training: weights (EMA and raw), optimizer, scheduler, EMA state."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    keys = ("state_dict", "current_model_state", "averaging_state", "optimizer_states", "lr_schedulers", "global_step")
    assert all(k in state for k in keys), sorted(state)
    return flat({k: state[k] for k in keys})


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """The uninterrupted run (in this process): final training state and the batches it trained."""
    tmp = tmp_path_factory.mktemp("straight")
    mp = pytest.MonkeyPatch()
    mp.setenv("LIT_SISR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    try:
        from lit_sisr.training import train

        train(compose_train(tmp, RESUME + HOST + [probe(tmp / "probe.txt")]))
    finally:
        mp.undo()
    record = steps(tmp / "probe.txt")
    assert [s for s, _ in record] == list(range(STEPS))
    return training_state(tmp / "run" / "checkpoints" / "last.ckpt"), record


# (data options, signal, the step before which the test signals the subprocess, the step of the
# checkpoint it leaves: SIGKILL -> the last periodic one (every 4 steps; epochs end at 6, 12),
# SIGTERM -> one saved after the step in progress). The uninterrupted run uses the host path with
# no workers; "device" cuts the batches on the training device (here the CPU) instead, so that
# case also checks that both placements train the same bits.
HOST = ["data.placement=host"]
CASES = [
    (HOST + ["data.num_workers=0"], signal.SIGKILL, 5, 4),
    (HOST + ["data.num_workers=2"], signal.SIGKILL, 10, 8),
    (HOST + ["data.num_workers=2"], signal.SIGTERM, 8, 9),
    (["data.placement=device"], signal.SIGKILL, 10, 8),
]


@pytest.mark.parametrize(
    ("data", "signum", "at", "saved"), CASES, ids=["w0-kill-epoch0", "w2-kill-epoch1", "w2-term", "device-kill-epoch1"]
)
def test_killed_and_resumed_run_equals_the_uninterrupted_one(
    tmp_path: Path, cache: Path, straight, data: list[str], signum: signal.Signals, at: int, saved: int
) -> None:
    from lit_sisr.training import train

    final, batches = straight
    args = RESUME + data + [f"hydra.run.dir={tmp_path / 'run'}"]
    record = tmp_path / "probe.txt"
    proc, log = start_train(args + [probe(record, pause_at=at)], tmp_path, {"LIT_SISR_CACHE": str(cache)})
    wait_for(record.with_suffix(".paused"), proc, log)
    proc.send_signal(signum)
    record.with_suffix(".go").touch()
    code = proc.wait(timeout=120)
    text = log.read_text()
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == saved  # mid-epoch
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert steps(record) == batches[:at]
    else:  # the step in progress finishes and is saved; an error exit says how to resume
        assert code == 1, text[-3000:]
        assert f"stopped by SIGTERM: checkpoint saved at step {saved} (epoch 1)" in text, text[-3000:]
        assert "Re-run the same command to resume" in text
        assert steps(record) == batches[:saved]
    assert not list(last.parent.glob(".*.tmp"))

    # re-run the same configuration (here in-process): it continues at the saved step, with the exact next batch
    resumed = tmp_path / "resumed.txt"
    train(compose_train(tmp_path, args + [probe(resumed)]))
    assert steps(resumed) == batches[saved:]
    state = training_state(last)
    assert state.keys() == final.keys()
    different = [
        k for k in final if not (torch.equal(state[k], final[k]) if torch.is_tensor(final[k]) else state[k] == final[k])
    ]
    assert not different, different


def interrupt(args: list[str], record: Path, at: int, signum: signal.Signals, cwd: Path, cache_dir: Path) -> str:
    """Run train.py until the step before ``at``, send ``signum`` and wait for it to exit; its log."""
    proc, log = start_train(args + [probe(record, pause_at=at)], cwd, {"LIT_SISR_CACHE": str(cache_dir)})
    wait_for(record.with_suffix(".paused"), proc, log)
    proc.send_signal(signum)
    record.with_suffix(".go").touch()
    code = proc.wait(timeout=120)
    assert code == (1 if signum == signal.SIGTERM else -signal.SIGKILL), log.read_text()[-3000:]
    return log.read_text()


# Two interruptions: SIGTERM on the last batch of epoch 0 (checkpoint at step 6, epoch 0: Lightning
# restores such a checkpoint as "epoch 0 done" without marking epoch 1 started), then, in the resumed
# run, SIGTERM (saved after step 8) or SIGKILL (the periodic checkpoint at step 8) mid-epoch 1.
@pytest.mark.parametrize(("signum", "saved"), [(signal.SIGTERM, 9), (signal.SIGKILL, 8)], ids=["term", "kill"])
def test_a_run_interrupted_twice_trains_every_step_once_and_equals_the_uninterrupted_one(
    tmp_path: Path, cache: Path, straight, signum: signal.Signals, saved: int
) -> None:
    from lit_sisr.training import train

    final, batches = straight
    args = RESUME + HOST + ["data.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    first, second, third = (tmp_path / f"{name}.txt" for name in ("first", "second", "third"))
    text = interrupt(args, first, 5, signal.SIGTERM, tmp_path, cache)
    assert "stopped by SIGTERM: checkpoint saved at step 6 (epoch 0)" in text, text[-3000:]
    assert steps(first) == batches[:6]
    text = interrupt(args, second, 10 if signum == signal.SIGKILL else 8, signum, tmp_path, cache)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == saved
    ran = steps(second)
    assert ran[: saved - 6] == batches[6:saved], ran  # the resume continued at step 6 with the exact batch
    train(compose_train(tmp_path, args + [probe(third)]))
    assert steps(third) == batches[saved:]  # steps saved..11, none more
    state = training_state(last)
    different = [
        k for k in final if not (torch.equal(state[k], final[k]) if torch.is_tensor(final[k]) else state[k] == final[k])
    ]
    assert state.keys() == final.keys() and not different, different


@pytest.mark.parametrize("lag", [0, 1])
def test_nan_loss_stops_training_naming_the_step_and_the_last_good_checkpoint(
    tmp_path: Path, cache: Path, monkeypatch, lag: int
) -> None:
    from lit_sisr.callbacks import NonFiniteLossError
    from lit_sisr.module import LitSR
    from lit_sisr.training import DONE_FILE, train

    original = LitSR.training_step

    def nan_at_step_5(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == 4 else loss

    monkeypatch.setattr(LitSR, "training_step", nan_at_step_5)
    # lag 1 (the GPU default) reads step 5's check at step 6, after step 5's update: the update at
    # the end of step 6 never happens and nothing after step 4 is saved either way.
    cfg = compose_train(
        tmp_path, RESUME + ["callbacks.step_checkpoint.every_n_train_steps=2", f"callbacks.finite_loss.lag_steps={lag}"]
    )
    with pytest.raises(NonFiniteLossError) as stop:
        train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    message = str(stop.value)
    assert "\n" not in message and message.startswith("training loss is nan at step 5 (epoch 0, batch 5)"), message
    seen = "training stopped before this step's update" if lag == 0 else "seen at step 6 (lag_steps"
    assert seen in message and f"Last good checkpoint: {last} (step 4)" in message
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 4 and all(torch.isfinite(w).all() for w in state["current_model_state"].values())
    assert not (tmp_path / "run" / DONE_FILE).exists()


def test_checkpoints_with_non_finite_weights_are_refused() -> None:
    from types import SimpleNamespace

    from lit_sisr.callbacks import FiniteLossGuard, NonFiniteLossError

    guard, trainer = FiniteLossGuard(), SimpleNamespace(checkpoint_callbacks=[], global_step=3)
    guard.on_save_checkpoint(trainer, None, {"global_step": 3, "state_dict": {"w": torch.ones(2)}})
    bad = {
        "global_step": 4,
        "state_dict": {"w": torch.ones(2)},
        "current_model_state": {"w": torch.tensor([1.0, float("inf")])},
    }
    with pytest.raises(
        NonFiniteLossError, match=r"refusing to save a checkpoint at step 4: current_model_state.w has NaN/inf"
    ):
        guard.on_save_checkpoint(trainer, None, bad)


def test_a_late_read_check_is_still_read_when_training_ends() -> None:
    from types import SimpleNamespace

    from lit_sisr.callbacks import FiniteLossGuard, NonFiniteLossError

    guard = FiniteLossGuard(lag_steps=1)
    trainer = SimpleNamespace(
        world_size=1,
        global_step=0,
        current_epoch=0,
        checkpoint_callbacks=[],
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_idx=0)),
    )
    guard.on_before_backward(trainer, None, torch.tensor(1.0))
    trainer.global_step = trainer.fit_loop.epoch_loop.batch_idx = 1
    guard.on_before_backward(trainer, None, torch.tensor(float("inf")))  # step 2: not read yet
    with pytest.raises(
        NonFiniteLossError, match=r"loss is inf at step 2 \(epoch 0, batch 2\): seen when training ended"
    ):
        guard.on_train_end(trainer, None)
    with pytest.raises(ValueError, match="lag_steps=-1"):
        FiniteLossGuard(lag_steps=-1)


# The CSV log of a run killed at step 10 (last.ckpt at step 8) and re-run: the same file as an
# uninterrupted run's, row for row (Lightning's own CSVLogger kept only the rows after the resume).
LOGGED = [o for o in RESUME if o != "logger=none"] + ["logger=csv", "trainer.log_every_n_steps=1"]


def test_a_killed_and_resumed_run_continues_its_metrics_file(tmp_path: Path, cache: Path) -> None:
    from lit_sisr.training import train

    train(compose_train(tmp_path / "straight", LOGGED))
    expected = (tmp_path / "straight" / "run" / "csv" / "metrics.csv").read_text()
    assert len(expected.splitlines()) > STEPS  # a row per step, and the validation rows

    args = LOGGED + [f"hydra.run.dir={tmp_path / 'run'}"]
    record = tmp_path / "probe.txt"
    proc, log = start_train(args + [probe(record, pause_at=10)], tmp_path, {"LIT_SISR_CACHE": str(cache)})
    wait_for(record.with_suffix(".paused"), proc, log)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    metrics = tmp_path / "run" / "csv" / "metrics.csv"
    killed = metrics.read_text()
    assert killed and expected.startswith(killed.splitlines()[0])  # rows up to the kill were on disk
    train(compose_train(tmp_path, args))  # the same command again: resumes from step 8
    got = metrics.read_text().splitlines()
    want = expected.splitlines()
    # every row and value, the epoch mean of the training loss of the interrupted epoch included
    # (its running sums are in the checkpoint: LitSR.train_loss)
    assert "train/loss_epoch" in want[0].split(",") and got == want


def test_the_running_loss_mean_is_in_the_state_dict_and_old_checkpoints_without_it_load() -> None:
    from lit_sisr.module import LitSR

    module = LitSR(net=torch.nn.Conv2d(3, 3, 1), scale=2)
    module.train_loss.update(torch.tensor([0.5, 0.5, 0.2]))
    state = module.state_dict()
    assert float(state["train_loss.mean_value"]) == pytest.approx(1.2) and float(state["train_loss.weight"]) == 3
    fresh = LitSR(net=torch.nn.Conv2d(3, 3, 1), scale=2)
    fresh.load_state_dict(state)  # strict: a resume restores the running mean
    assert float(fresh.train_loss.compute()) == pytest.approx(0.4)
    old = {k: v for k, v in state.items() if not k.startswith("train_loss.")}
    older = LitSR(net=torch.nn.Conv2d(3, 3, 1), scale=2)
    older.load_state_dict(old)  # strict too: a checkpoint from before the mean was kept still resumes
    assert float(older.train_loss.weight) == 0 and torch.equal(older.net.weight, module.net.weight)


def test_a_failed_relaunch_keeps_the_earlier_record_and_a_new_config_keeps_the_old_one(
    tmp_path: Path, cache: Path
) -> None:
    from lit_sisr.data.io import ImageError
    from lit_sisr.training import train

    first = LOGGED + ["trainer.max_epochs=1"]
    train(compose_train(tmp_path, first))
    run = tmp_path / "run"
    kept = {name: (run / name).read_bytes() for name in ("config.yaml", "csv/metrics.csv", "checkpoints/last.ckpt")}

    # the same run with more epochs on data holding a truncated image: one error, the record untouched
    bad = tmp_path / "bad"
    bad.mkdir()
    for source in sorted((cache / "demo" / "train").iterdir())[:3]:
        (bad / source.name).write_bytes(source.read_bytes())
    (bad / "cut.png").write_bytes((bad / source.name).read_bytes()[:2000])
    with pytest.raises(ImageError, match="cut.png: unreadable or truncated image"):
        train(compose_train(tmp_path, first + ["trainer.max_epochs=2", f"data.train.hr_dir={bad}"]))
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert not list(run.glob("config.prev-*.yaml"))

    # a run that really starts with another config: config.yaml is replaced, the earlier one kept beside it
    train(compose_train(tmp_path, first + ["trainer.max_epochs=2"]))
    assert (run / "config.prev-1.yaml").read_bytes() == kept["config.yaml"]
    assert (run / "config.yaml").read_bytes() != kept["config.yaml"]
    # resumed from the end of epoch 0: the earlier rows stay byte for byte, epoch 1's follow
    history = (run / "csv" / "metrics.csv").read_bytes()
    assert history.startswith(kept["csv/metrics.csv"]) and len(history) > len(kept["csv/metrics.csv"])
