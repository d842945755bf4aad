"""Shared fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def one_thread():
    """Tiny convolutions run faster on one intra-op thread, much faster when the cores are shared
    (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
