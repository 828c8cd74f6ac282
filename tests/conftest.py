"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest
import torch

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if _WORKERS > 1:
    # several pytest workers share the cores (make test: pytest-xdist, one worker per core): each worker and
    # the processes its tests start get its share of the threads, not all of them (oversubscribed OpenMP
    # threads wait on each other far longer than they work)
    _SHARE = max(1, (os.cpu_count() or 1) // _WORKERS)
    torch.set_num_threads(_SHARE)
    os.environ.setdefault("OMP_NUM_THREADS", str(_SHARE))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: the CPU is shared with other jobs, and two OpenMP threads then
    wait on each other for far longer than one thread works. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The built-in digits at 32x32, 3 clips per class and split, 250 frames: generated once per test module
    (a module with other needs defines its own ``data``)."""
    from export_helpers import small_digits

    return small_digits(tmp_path_factory.mktemp("data") / "digits")
