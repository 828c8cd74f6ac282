"""Adversarial edge cases of the hook-based counter (energy/rules.py, energy/profiler.py).

Tests marked "BUG" in their docstring fail on the current engine and pass once the bug
is fixed; the others pin behaviour that is already right for tricky inputs.
"""

from __future__ import annotations

import json
import math
import warnings

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from energy import Profiler, profile

warnings.filterwarnings("ignore", message=".*Triton.*")


def _spike(shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _brute_sops(conv, x) -> int:
    """(non-zero input, weight) pairs reaching an output: the input convolved with all-ones weights."""
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(conv.kernel_size)]
    ones = torch.ones_like(conv.weight, dtype=torch.float64)
    xd = x.double()
    pad = conv.padding
    if conv.padding_mode != "zeros":
        xd = F.pad(xd, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        pad = 0
    return int(fn(xd, ones, None, conv.stride, pad, conv.dilation, conv.groups).sum())


class _SyncCounter(TorchDispatchMode):
    """Counts device->host scalar reads (.item(), bool(t), float(t), int(t))."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (
            torch.ops.aten._local_scalar_dense.default,
            torch.ops.aten.item.default,
            torch.ops.aten.is_nonzero.default,
        ):
            self.n += 1
        return func(*args, **(kwargs or {}))


def _profiler_syncs(model: nn.Module, *args) -> int:
    """Host syncs the counting hooks add to one forward (with hooks minus without)."""
    from spikingjelly.activation_based import functional

    base = _SyncCounter()
    with torch.no_grad(), base:
        model(*args)
    functional.reset_net(model)
    hooked = _SyncCounter()
    with Profiler(model), torch.no_grad(), hooked:
        model(*args)
    return hooked.n - base.n


# =========================================================================== convolution


@pytest.mark.parametrize(
    "conv, shape",
    [
        (nn.Conv1d(2, 4, 3, stride=2, padding=1, groups=2), (2, 2, 11)),
        (nn.Conv1d(2, 3, 4, padding="same", padding_mode="circular"), (2, 2, 9)),
        (nn.Conv3d(2, 3, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), dilation=(1, 1, 2)), (2, 2, 4, 7, 9)),
        (nn.Conv2d(2, 3, 3, padding="same"), (2, 2, 7, 8)),
        (nn.Conv2d(2, 3, 4, padding="same", dilation=2), (2, 2, 7, 8)),
        (nn.Conv2d(2, 3, (4, 3), padding="same", padding_mode="reflect"), (2, 2, 7, 8)),
        (nn.Conv2d(2, 3, 3, stride=2, padding="valid"), (2, 2, 7, 8)),
        (nn.Conv2d(4, 6, 3, stride=(2, 1), padding=(2, 0), dilation=(1, 2), groups=2), (1, 4, 9, 9)),
    ],
)
def test_conv_sops_exact_for_1d_3d_and_string_padding(conv, shape):
    x = _spike(shape, 0.35, seed=3)
    got = profile(conv, x).totals
    want = _brute_sops(conv, x)
    assert got["sops"] == want and got["macs"] == 0, (
        f"expected {want} SOPs and 0 MACs, found {got['sops']} / {got['macs']}"
    )


def test_conv_transpose_is_listed_not_counted_not_zero():
    net = nn.Sequential(nn.ConvTranspose2d(2, 2, 3), nn.ReLU())
    r = profile(net, _spike((1, 2, 5, 5)))
    types = [d["type"] for d in r.not_counted]
    assert types == ["ConvTranspose2d"], f"expected ConvTranspose2d listed as not counted, found {types}"
    warns = r.energy_report()["warnings"]
    assert any("ConvTranspose2d" in w for w in warns), f"expected a not-counted warning, found {warns}"


def test_conv_on_empty_batch_counts_zero():
    for m, x in (
        (nn.Conv2d(2, 3, 3), torch.zeros(0, 2, 5, 5)),
        (nn.AvgPool2d(2), torch.zeros(0, 2, 4, 4)),
        (nn.Linear(3, 2), torch.zeros(0, 3)),
    ):
        t = profile(m, x).totals
        assert t["sops"] == 0 and t["macs"] == 0, f"{type(m).__name__}: expected 0 ops, found {t['sops']}/{t['macs']}"


def test_conv_spikes_under_inference_mode():
    """BUG: conv coverage uses autograd, which torch.inference_mode() disables (crash)."""
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = _spike((1, 2, 5, 5), 0.5)
    want = _brute_sops(conv, x)
    try:
        with Profiler(conv) as prof, torch.inference_mode():
            conv(x)
        found = prof.result().totals["sops"]
    except RuntimeError as exc:
        found = f"RuntimeError: {exc}"
    assert found == want, f"expected {want} SOPs under inference_mode, found {found}"


# =========================================================================== linear / attention


def test_linear_on_time_major_spikes():
    lin = nn.Linear(6, 5)
    x = _spike((3, 2, 6), 0.4)
    t = profile(lin, x).totals
    assert t["sops"] == int(x.sum()) * 5 and t["macs"] == 0, f"expected {int(x.sum()) * 5} SOPs, found {t['sops']}"
    assert t["weight_reads"] == _params(lin), f"expected {_params(lin)} weight reads, found {t['weight_reads']}"


def test_keyword_argument_call_does_not_crash():
    """BUG: forward hooks get positional args only; ``lin(input=x)`` makes every rule crash."""
    lin = nn.Linear(4, 3)
    x = torch.rand(2, 4) + 0.1
    try:
        found = profile(lin, forward=lambda m: m(input=x)).totals["macs"]
    except Exception as exc:  # noqa: BLE001
        found = f"{type(exc).__name__}: {exc}"
    assert found == 2 * 3 * 4, f"expected 24 MACs, found {found}"


def _mha_macs(n, lq, ls, e, h):
    dh = e // h
    return n * (lq + 2 * ls) * e * e + 2 * n * h * lq * ls * dh + 3 * n * h * lq * ls + n * lq * e * e


def test_mha_batch_first_batched_and_spikes():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.rand(3, 5, 8)
    t = profile(mha, (x, x, x)).totals
    assert t["macs"] == _mha_macs(3, 5, 5, 8, 2), f"expected {_mha_macs(3, 5, 5, 8, 2)} MACs, found {t['macs']}"
    s = _spike((3, 5, 8), 0.4)
    t = profile(mha, (s, s, s)).totals
    want_sops = 3 * int(s.sum()) * 8
    want_macs = _mha_macs(3, 5, 5, 8, 2) - 3 * 3 * 5 * 8 * 8
    assert t["sops"] == want_sops, f"expected {want_sops} projection SOPs, found {t['sops']}"
    assert t["macs"] == want_macs, f"expected {want_macs} MACs, found {t['macs']}"


def test_mha_batch_first_unbatched_input():
    """BUG: with batch_first=True an unbatched [L, E] query is read as [N=L, L=E]."""
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    q = torch.rand(5, 8)
    found = profile(mha, (q, q, q)).totals["macs"]
    want = _mha_macs(1, 5, 5, 8, 2)
    assert found == want, f"expected {want} MACs for an unbatched [5, 8] query, found {found}"


def test_mha_no_reuse_charges_weights_only_for_weighted_products():
    """BUG: reuse='none' charges a weight read for every Q·Kᵀ, A·V and softmax op, which use no weights."""
    mha = nn.MultiheadAttention(8, 2).eval()
    q = torch.rand(5, 1, 8)
    r = profile(mha, (q, q, q), reuse="none")
    proj = 4 * 5 * 8 * 8  # in-projections (q, k, v) and out-projection
    biases = 4 * 5 * 8  # one bias read per projected element
    found = r.totals["weight_reads"]
    assert found <= proj + biases, f"expected at most {proj + biases} weight reads, found {found}"


def test_spiking_self_attention_products_not_silently_zero():
    """BUG: Q·Kᵀ and A·V of spikingjelly's SpikingSelfAttention run inline; they are neither counted
    nor is the module listed as not counted."""
    from spikingjelly.activation_based.layer.attention import SpikingSelfAttention

    ssa = SpikingSelfAttention(8, num_heads=2).eval()
    r = profile(ssa, _spike((2, 1, 8, 6), 0.4), samples=1)
    types = set(r.per_layer["type"])
    assert "SpikingSelfAttention" in types, (
        f"expected SpikingSelfAttention's attention products counted or listed as not counted, "
        f"found rows only for {sorted(types)} and not_counted={r.not_counted}"
    )


# =========================================================================== pooling


@pytest.mark.parametrize("out", [(3, 4), (5, 2), (None, 3), 1, (7, 10)])
def test_adaptive_avg_pool_non_divisible_equals_window_sums(out):
    pool = nn.AdaptiveAvgPool2d(out)
    x = _spike((2, 3, 7, 10), 0.3, seed=5)
    oh, ow = pool(x).shape[-2:]
    want = 0
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * 7) // oh, -((-(i + 1) * 7) // oh)
            w0, w1 = (j * 10) // ow, -((-(j + 1) * 10) // ow)
            want += int(x[..., h0:h1, w0:w1].sum())
    found = profile(pool, x).totals["sops"]
    assert found == want, f"expected {want} SOPs, found {found}"


def test_adaptive_avg_pool_1d_3d_and_avg_pool_1d_ceil():
    x = _spike((2, 3, 8), 0.4, seed=1)
    want = sum(int(x[..., (i * 8) // 3 : -((-(i + 1) * 8) // 3)].sum()) for i in range(3))
    found = profile(nn.AdaptiveAvgPool1d(3), x).totals["sops"]
    assert found == want, f"AdaptiveAvgPool1d: expected {want}, found {found}"
    x = _spike((1, 2, 5, 7, 3), 0.4, seed=2)
    out = (2, 3, 2)
    want = 0
    for a in range(2):
        for b in range(3):
            for c in range(2):
                sl = [
                    slice((i * n) // o, -((-(i + 1) * n) // o))
                    for i, n, o in zip((a, b, c), (5, 7, 3), out, strict=True)
                ]
                want += int(x[..., sl[0], sl[1], sl[2]].sum())
    found = profile(nn.AdaptiveAvgPool3d(out), x).totals["sops"]
    assert found == want, f"AdaptiveAvgPool3d: expected {want}, found {found}"
    x = _spike((2, 3, 10), 0.4, seed=3)
    pool = nn.AvgPool1d(3, 2, 1, ceil_mode=True)
    n_out = pool(x).shape[-1]
    want = sum(int(x[..., max(i * 2 - 1, 0) : i * 2 - 1 + 3].sum()) for i in range(n_out))
    found = profile(pool, x).totals["sops"]
    assert found == want, f"AvgPool1d ceil_mode: expected {want}, found {found}"


def test_avg_pool_rule_has_no_host_sync():
    """BUG: _avg_pool does float(cov.sum()) on the device coverage on every call (a host sync on CUDA)."""
    for pool in (nn.AvgPool2d(2), nn.AdaptiveAvgPool2d((3, 3))):
        n = _profiler_syncs(nn.Sequential(pool), torch.rand(2, 3, 8, 8))
        assert n == 0, f"{type(pool).__name__}: expected 0 host syncs in the hooks, found {n}"


def test_other_rules_have_no_host_sync():
    from spikingjelly.activation_based import layer, neuron

    cases = [
        (
            nn.Sequential(
                nn.Conv2d(3, 4, 3),
                nn.BatchNorm2d(4),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(36, 3),
                nn.LayerNorm(3),
                nn.Softmax(-1),
            ).eval(),
            (torch.rand(2, 3, 8, 8),),
        ),
        (
            nn.Sequential(
                layer.Conv2d(1, 4, 3, step_mode="m"),
                neuron.LIFNode(step_mode="m"),
                layer.MaxPool2d(2, step_mode="m"),
                layer.Flatten(step_mode="m"),
                layer.Linear(36, 3, step_mode="m"),
            ),
            (torch.rand(3, 2, 1, 8, 8),),
        ),
        (nn.MultiheadAttention(8, 2).eval(), (torch.rand(3, 2, 8),) * 3),
    ]
    for model, args in cases:
        n = _profiler_syncs(model, *args)
        assert n == 0, f"{type(model).__name__}: expected 0 host syncs, found {n}"


def test_avg_pool_subclass_does_not_crash():
    """BUG: _avg_pool reads the dimensionality from the class name (int('MyPool'[-2]) crashes)."""

    class MyPool(nn.AvgPool2d):
        pass

    x = _spike((1, 2, 4, 4), 0.5)
    want = int(x.sum())
    try:
        found = profile(MyPool(2), x).totals["sops"]
    except ValueError as exc:
        found = f"ValueError: {exc}"
    assert found == want, f"expected {want} SOPs, found {found}"


# =========================================================================== normalisation


def test_threshold_dependent_batch_norm_multi_step():
    from spikingjelly.activation_based import layer

    t_steps, b = 4, 2
    bn = layer.ThresholdDependentBatchNorm2d(alpha=1.0, v_th=1.0, num_features=3).eval()
    x = torch.rand(t_steps, b, 3, 4, 4)
    r = profile(bn, x, samples=b)
    assert r.totals["macs"] == x.numel(), f"expected {x.numel()} MACs, found {r.totals['macs']}"
    assert r.totals["weight_reads"] == 6 * t_steps, (
        f"expected {6 * t_steps} weight reads, found {r.totals['weight_reads']}"
    )
    assert r.per_layer.loc[0, "act_buffer"] == 48, f"expected act buffer 48, found {r.per_layer.loc[0, 'act_buffer']}"


def test_batch_norm_subclass_buffer_size():
    """BUG: BN's per-sample dims come from the class name; a subclass gets [W] instead of [C, H, W]."""

    class Norm(nn.BatchNorm2d):
        pass

    found = profile(Norm(3).eval(), torch.rand(1, 3, 4, 4)).per_layer.loc[0, "act_buffer"]
    assert found == 48, f"expected act buffer 48 elements, found {found}"


def test_batch_norm_no_reuse_reads_weights_per_mac():
    """BUG (minor): reuse='none' is documented as one weight read per MAC, but BN keeps per-call reads."""
    bn = nn.BatchNorm2d(4).eval()
    r = profile(bn, torch.rand(2, 4, 5, 5), reuse="none")
    assert r.totals["weight_reads"] >= r.totals["macs"], (
        f"expected at least {r.totals['macs']} weight reads (one per MAC), found {r.totals['weight_reads']}"
    )


# =========================================================================== memory buffers


@pytest.mark.parametrize("layer_", [nn.ReLU(), nn.MaxPool2d(1), nn.Identity(), nn.Dropout(0.0)])
def test_elementwise_and_preserving_layers_act_buffer_is_whole_sample(layer_):
    """BUG: sample_dims=1 makes the activation buffer the last dim only (W), so tiered cost models
    put a 64x32x32 activation in the 8 KB SRAM tier (10x too cheap)."""
    x = torch.rand(1, 64, 32, 32)
    found = profile(nn.Sequential(layer_).eval(), x).per_layer.loc[0, "act_buffer"]
    assert found == 64 * 32 * 32, f"expected act buffer {64 * 32 * 32} elements, found {found}"


# =========================================================================== time steps and containers


def test_sj_multi_step_layers_read_weights_per_step():
    from spikingjelly.activation_based import layer

    lin = layer.Linear(6, 5, step_mode="m")
    r = profile(lin, _spike((3, 2, 6)), samples=2)
    assert r.totals["weight_reads"] == 35 * 3, f"expected 105 weight reads, found {r.totals['weight_reads']}"


def test_multi_step_container_reads_weights_per_step():
    from spikingjelly.activation_based import layer

    conv = nn.Conv2d(2, 3, 3, padding=1)
    r = profile(layer.MultiStepContainer(conv), _spike((4, 2, 2, 6, 6)), samples=2)
    want = _params(conv) * 4
    assert r.totals["weight_reads"] == want, f"expected {want} weight reads, found {r.totals['weight_reads']}"


def test_seq_to_ann_container_reads_weights_per_step():
    """BUG: SeqToANNContainer has no ``step_mode`` attribute, so no step count is pushed and a plain
    nn.Conv2d inside it (called once on [T*B, ...]) reads its weights once instead of T times."""
    from spikingjelly.activation_based import layer

    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = _spike((4, 2, 2, 6, 6))
    r = profile(layer.SeqToANNContainer(conv), x, samples=2)
    want = _params(conv) * 4
    assert r.totals["weight_reads"] == want, f"expected {want} weight reads (x T=4), found {r.totals['weight_reads']}"
    assert r.totals["sops"] == _brute_sops(conv, x.flatten(0, 1))


def test_per_step_loop_container_reads_weights_once_per_step():
    """BUG: a step_mode='m' module that loops over T (LinearRecurrentContainer) pushes T on the step
    stack and its child is also called T times: T^2 weight reads."""
    from spikingjelly.activation_based import layer, neuron

    lrc = layer.LinearRecurrentContainer(neuron.IFNode(step_mode="s"), in_features=4, out_features=4, step_mode="m")
    r = profile(lrc, torch.rand(3, 2, 4), samples=2)
    want = _params(lrc) * 3
    assert r.totals["weight_reads"] == want, f"expected {want} weight reads (x T=3), found {r.totals['weight_reads']}"


def test_module_called_twice_per_forward():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x))

    r = profile(Twice(), torch.rand(3, 4) + 0.1)
    assert r.totals["macs"] == 2 * 3 * 16, f"expected 96 MACs, found {r.totals['macs']}"
    assert r.per_layer.loc[0, "calls"] == 2, f"expected 2 calls, found {r.per_layer.loc[0, 'calls']}"


def test_module_shared_by_two_parents_counted_once_per_call():
    """BUG: _plan visits a module once per parent, so it gets two hooks and every call counts twice."""
    lin = nn.Linear(4, 4)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(lin)
            self.b = nn.Sequential(lin)

        def forward(self, x):
            return self.b(self.a(x))

    r = profile(Shared(), torch.rand(3, 4) + 0.1)
    assert r.totals["macs"] == 2 * 3 * 16, f"expected 96 MACs (2 calls), found {r.totals['macs']}"


def test_module_without_rule_inside_sequential_is_listed():
    class NoRule(nn.Module):
        def forward(self, x):
            return x * 2

    r = profile(nn.Sequential(nn.Linear(3, 3), NoRule(), nn.Sequential(NoRule())), torch.rand(2, 3))
    names = [d["name"] for d in r.not_counted]
    assert names == ["1", "2.0"], f"expected ['1', '2.0'] not counted, found {names}"
    assert r.totals["not_counted_modules"] == 2


# =========================================================================== neurons


@pytest.mark.parametrize("cls_name", ["ParametricLIFNode", "IFNode"])
def test_sj_neuron_single_step_loop_equals_multi_step(cls_name):
    from spikingjelly.activation_based import neuron

    cls = getattr(neuron, cls_name)
    t_steps, b, n = 4, 2, 5
    x = torch.rand(t_steps, b, n)
    single = cls(step_mode="s")
    rs = profile(single, forward=lambda m: [m(x[t]) for t in range(t_steps)])
    rm = profile(cls(step_mode="m"), x, samples=b)
    p = _params(single)
    for r, mode in ((rs, "s"), (rm, "m")):
        t = r.totals
        assert t["neuron_updates"] == t_steps * b * n, (
            f"{mode}: expected {t_steps * b * n} updates, found {t['neuron_updates']}"
        )
        assert t["state_reads"] == t["state_writes"] == t_steps * b * n
        assert t["weight_reads"] == p * t_steps, (
            f"{mode}: expected {p * t_steps} weight reads, found {t['weight_reads']}"
        )


def test_snntorch_init_hidden_neurons():
    import snntorch as snn

    t_steps, b, n = 4, 2, 5
    x = torch.rand(t_steps, b, n)
    for m, states in (
        (snn.Leaky(beta=0.5, init_hidden=True), 1),
        (snn.Synaptic(alpha=0.5, beta=0.5, init_hidden=True), 2),
    ):
        t = profile(m, forward=lambda mod: [mod(x[i]) for i in range(t_steps)]).totals
        assert t["neuron_updates"] == t_steps * b * n, (
            f"{type(m).__name__}: expected {t_steps * b * n}, found {t['neuron_updates']}"
        )
        assert t["state_reads"] == states * t_steps * b * n, f"{type(m).__name__}: state reads {t['state_reads']}"
        registry = getattr(snn.SpikingNeuron, "instances", None)
        if isinstance(registry, list) and m in registry:
            registry.remove(m)  # snnTorch keeps every init_hidden neuron alive otherwise


def test_snntorch_neuron_subclass_keeps_state_count():
    """BUG (minor): the number of state tensors is chosen by class name; a Synaptic subclass gets 1."""
    import snntorch as snn

    class MySyn(snn.Synaptic):
        pass

    found = profile(MySyn(alpha=0.5, beta=0.5, init_hidden=True), torch.rand(2, 3)).totals["state_reads"]
    assert found == 2 * 6, f"expected 12 state reads (syn + mem), found {found}"


def test_snntorch_recurrent_weights_counted():
    """BUG: RLeaky's recurrent nn.Linear is a child covered by the neuron rule: its work is silently zero."""
    import snntorch as snn

    n = 5
    rl = snn.RLeaky(beta=0.5, linear_features=n)
    seen = []
    handle = rl.recurrent.register_forward_hook(lambda m, a, o: seen.append(a[0].detach().clone()))
    x = torch.full((4, 2, n), 2.0)

    def run(m):
        spk, mem = m.init_rleaky()
        for t in range(4):
            spk, mem = m(x[t], spk, mem)

    try:
        r = profile(rl, forward=run)
    finally:
        handle.remove()
    want = sum(int(torch.count_nonzero(s)) * n for s in seen)
    assert want > 0
    found = r.totals["sops"] + r.totals["macs"]
    assert found >= want, f"expected at least {want} recurrent SOPs, found {found} ops"


def test_custom_neuron_subclass_counted_as_spiking():
    from spikingjelly.activation_based import layer, neuron

    class MyLIF(neuron.LIFNode):
        pass

    x = torch.rand(4, 2, 5) * 3
    net = nn.Sequential(MyLIF(step_mode="m", v_threshold=0.5), layer.Linear(5, 3, step_mode="m"))
    r = profile(net, x, samples=2)
    rows = r.per_layer.set_index("name")
    assert rows.loc["0", "spiking"] and rows.loc["0", "neuron_updates"] == 40
    with torch.no_grad():
        from spikingjelly.activation_based import functional

        functional.reset_net(net)
        spikes = net[0](x)
    want = int(spikes.sum()) * 3
    assert rows.loc["1", "sops"] == want, f"expected {want} SOPs, found {rows.loc['1', 'sops']}"


def test_analog_neuron_output_is_not_treated_as_spikes():
    """BUG: every BaseNode output is marked as spikes, but LIAFNode emits analog values act(v):
    the next layer then counts SOPs on a real-valued input instead of MACs."""
    from spikingjelly.activation_based import neuron

    net = nn.Sequential(neuron.LIAFNode(act=torch.tanh, threshold_related=False, step_mode="s"), nn.Linear(5, 3))
    x = torch.rand(2, 5) * 3
    r = profile(net, x)
    lin = r.per_layer.set_index("name").loc["1"]
    assert lin["macs"] == 2 * 3 * 5 and lin["sops"] == 0, (
        f"expected 30 MACs and 0 SOPs on analog input, found {lin['macs']} MACs, {lin['sops']} SOPs"
    )


def test_dropout_in_training_mode_is_not_spike_preserving():
    """BUG (minor): nn.Dropout is assumed spike-preserving by type; in train mode it emits {0, 1/(1-p)}."""
    net = nn.Sequential(nn.Dropout(0.5), nn.Linear(5, 3)).train()
    torch.manual_seed(0)
    r = profile(net, _spike((2, 5), 0.6))
    lin = r.per_layer.set_index("name").loc["1"]
    assert lin["macs"] == 2 * 3 * 5 and lin["sops"] == 0, (
        f"expected 30 MACs on a {{0, 2}} input, found {lin['macs']} MACs, {lin['sops']} SOPs"
    )


@pytest.mark.parametrize("kind", ["sj", "snntorch"])
def test_neuron_on_empty_batch_does_not_crash(kind):
    """BUG: neuron_counts indexes per_step[0] to size the buffer, IndexError on an empty batch."""
    import snntorch as snn
    from spikingjelly.activation_based import neuron

    m = neuron.LIFNode(step_mode="s") if kind == "sj" else snn.Leaky(beta=0.5)
    try:
        found = profile(m, torch.zeros(0, 3)).totals["neuron_updates"]
    except IndexError as exc:
        found = f"IndexError: {exc}"
    assert found == 0, f"expected 0 neuron updates, found {found}"


# =========================================================================== dtypes


def test_bool_and_integer_inputs():
    xb = torch.rand(2, 6, generator=torch.Generator().manual_seed(0)) < 0.5
    row = profile(nn.Flatten(), xb).per_layer.iloc[0]
    assert row["binary_input"] and math.isclose(row["input_rate"], float(xb.float().mean()), rel_tol=1e-6), (
        f"bool input: expected binary with rate {float(xb.float().mean())}, found {row['binary_input']}, {row['input_rate']}"
    )
    assert profile(nn.Identity(), xb.long()).per_layer.iloc[0]["binary_input"]
    assert not profile(nn.Identity(), torch.tensor([[0, 2, 1]])).per_layer.iloc[0]["binary_input"]


# =========================================================================== reports end to end


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from spikedata.digits import DigitsConfig, generate_digits

    return generate_digits(
        tmp_path_factory.mktemp("d") / "digits", DigitsConfig(clips_per_class=3, frames=40, height=16, width=16)
    )


@pytest.mark.parametrize(
    "kind", ["test-ann-cnn", "test-sj-snn", "test-sj-snn-single", "test-snntorch-snn", "sj-ms-resnet18"]
)
def test_report_summary_json_valid_and_consistent(tmp_path, digits, kind):
    from reports.writer import summary_json
    from spklip_energy.analysis import analyse_checkpoint
    from spklip_energy.checkpoint import save_checkpoint
    from spklip_energy.zoo import build_model, default_card

    card = default_card(kind, height=16, width=16)
    path = tmp_path / f"{kind}.pt"
    save_checkpoint(path, build_model(card), card)
    summary, per_layer = analyse_checkpoint(path, data=digits, samples=3, batch_size=2, reuse="none")

    def no_nan(c):
        raise AssertionError(f"expected strict JSON, found {c}")

    back = json.loads(summary_json(summary), parse_constant=no_nan)
    n = back["data"]["samples"]
    c = back["counts"]
    counted = per_layer[per_layer["counted"].astype(bool)]
    for key in ("macs", "sops", "neuron_updates", "mem_reads", "mem_writes", "mem_accesses"):
        assert c[key] == pytest.approx(counted[key].sum()), f"{key}: expected {counted[key].sum()}, found {c[key]}"
        assert back["counts_per_sample"][key] == pytest.approx(c[key] / n)
    assert c["mem_accesses"] == c["mem_reads"] + c["mem_writes"]
    e = back["energy"]
    assert e["total_j"] == pytest.approx(e["compute_j"] + e["neuron_j"] + e["memory_j"])
    assert e["total_j"] == pytest.approx(counted["total_j"].sum())
    assert back["table6_per_sample"]["total_energy_j"] == pytest.approx(e["total_j"] / n)
    if kind in ("test-sj-snn", "test-sj-snn-single", "test-snntorch-snn"):
        # LIF on 16x8x8 and 32x4x4 per sample and step, T=4 steps
        want = (16 * 8 * 8 + 32 * 4 * 4) * 4 * n
        assert c["neuron_updates"] == want, f"expected {want} neuron updates, found {c['neuron_updates']}"
    assert isinstance(pd.DataFrame(per_layer), pd.DataFrame)
