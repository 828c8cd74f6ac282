"""``report`` streams: counts are folded into one running record per layer as forward passes go, so the
memory of profiling does not grow with the clips (benchmarks/bench_report_memory.py measures the whole
``report``), and the folded totals are the per-call sums."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import torch
from spikingjelly.activation_based import functional

from energy.profiler import Profiler, profile
from spklip_energy.zoo import build_model

COUNTED = ("macs", "sops", "neuron_updates", "mem_reads", "mem_writes")


def _x(kind: str, seed: int) -> torch.Tensor:
    from spklip_energy.zoo import default_card

    g = torch.Generator().manual_seed(seed)
    t = default_card(kind)["config"]["timesteps"]
    shape = (t, 2, 1, 32, 32) if kind != "test-ann-cnn" else (2, t, 32, 32)  # [T, B, 1, H, W] / [B, T, H, W]
    return (torch.rand(shape, generator=g) < 0.2).float()


def _model(kind: str) -> torch.nn.Module:
    from spklip_energy.zoo import default_card

    return build_model(default_card(kind, seed=0)).eval()


@pytest.mark.parametrize("kind", ["test-ann-cnn", "test-sj-snn"])
def test_folded_counts_equal_the_sum_of_the_calls(kind):
    model = _model(kind)
    inputs = [_x(kind, s) for s in range(5)]
    each = []
    for x in inputs:
        functional.reset_net(model)
        each.append(profile(model, x).per_layer.set_index("name"))

    def forward(m):
        for x in inputs:
            functional.reset_net(m)
            m(x)

    together = profile(model, forward=forward).per_layer.set_index("name")
    for col in COUNTED:
        assert together[col].tolist() == sum(e[col] for e in each).tolist(), col


def test_profiling_memory_does_not_grow_with_the_calls():
    """Python memory held per forward pass, with and without the profiler: the profiler adds nothing that
    grows (before folding it kept every call's records and every tensor's cached count, about 1.3 kB per
    call of this 5-layer model; spikingjelly's own LIF keeps ~150 B per call with or without it)."""
    model = _model("test-sj-snn")
    x = _x("test-sj-snn", 0)

    def run(calls: int) -> None:
        for _ in range(calls):
            functional.reset_net(model)
            model(x)

    def growth(calls: int = 200) -> float:
        run(3)  # warm-up: caches of torch and the rules
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run(calls)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / calls

    with torch.no_grad():
        tracemalloc.start()
        try:
            plain = growth()
            with Profiler(model) as prof:
                profiled = growth()
                held = sum(len(s.records) for s in prof.sites)
        finally:
            tracemalloc.stop()
    assert held <= len(prof.sites)  # one running record per layer, whatever the number of calls
    assert profiled <= plain + 100, (plain, profiled)  # bytes per call
