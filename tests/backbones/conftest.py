"""Backbone tests run many tiny convolutions: one intra-op thread is faster for those, and much
faster when the two cores are shared (two threads made them ~50x slower under load). Tests marked
``slow`` (full-size networks, official weights on whole benchmark images) keep every thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread(request):
    if request.node.get_closest_marker("slow"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
