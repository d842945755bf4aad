"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lit_sisr


def pytest_configure(config) -> None:
    # The ${lit_sisr.*:} resolvers of conf/, as the entry points register them (tests compose the configs).
    lit_sisr.register_resolvers()


@pytest.fixture()
def one_thread():
    """Tiny convolutions run faster on one intra-op thread, much faster when the cores are shared
    (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def cache(tmp_path_factory, monkeypatch) -> Path:
    """``LIT_SISR_CACHE``, one folder for the whole session (the demo images land in ``<cache>/demo`` once)."""
    path = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("LIT_SISR_CACHE", str(path))
    return path
