"""Hook-based counting: exact SOPs, MACs, neuron updates and memory accesses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from energy import profile
from spklip_energy.errors import ConfigError


def _brute_conv_sops(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """(non-zero input, weight) pairs reaching an output: the input convolved with all-ones weights."""
    ones = torch.ones_like(conv.weight, dtype=torch.float64)
    xd = x.to(torch.float64)
    if conv.padding_mode != "zeros":
        xd = F.pad(xd, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        pad = 0
    else:
        pad = conv.padding
    return int(F.conv2d(xd, ones, None, conv.stride, pad, conv.dilation, conv.groups).sum().item())


def _spike(shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


# --------------------------------------------------------------------------- hand-computable cases


def test_single_spike_at_corner_and_centre_of_3x3_conv():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 0] = 1  # corner: reaches the 2x2 outputs around it
    assert profile(conv, x).totals["sops"] == 4 * 2
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1  # centre: all 9 outputs of its neighbourhood
    assert profile(conv, x).totals["sops"] == 9 * 2
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2] = 1  # top edge: 2 rows x 3 columns
    assert profile(conv, x).totals["sops"] == 6 * 2


def test_stride_dilation_and_groups_by_hand():
    # stride 2, padding 1 on 5x5: outputs at rows/cols 0, 2, 4 (centres); input (0, 0) is
    # covered only by output (0, 0); input (1, 1) by outputs (0..1) x (0..1) = 4
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    for pos, expected in (((0, 0), 1), ((1, 1), 4), ((2, 2), 1), ((1, 2), 2)):
        x = torch.zeros(1, 1, 5, 5)
        x[0, 0, pos[0], pos[1]] = 1
        assert profile(conv, x).totals["sops"] == expected, f"input {pos}"
    # dilation 2, padding 2 keeps 5x5: taps at -2, 0, +2; pixel (0, 0) reached from outputs (0|2, 0|2)
    conv = nn.Conv2d(1, 1, 3, padding=2, dilation=2, bias=False)
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 0] = 1
    assert profile(conv, x).totals["sops"] == 4
    # groups: a spike in group 0 only reaches that group's output channels
    conv = nn.Conv2d(4, 6, 1, groups=2, bias=False)
    x = torch.zeros(1, 4, 3, 3)
    x[0, 1, 1, 1] = 1
    assert profile(conv, x).totals["sops"] == 3


def test_dense_input_counts_macs_not_sops():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    x = torch.rand(2, 3, 16, 16) + 0.1
    t = profile(conv, x).totals
    assert t["sops"] == 0
    assert t["macs"] == 2 * 8 * 8 * 8 * (3 * 9)


def test_linear_sops_are_spikes_times_outputs():
    lin = nn.Linear(10, 7)
    x = _spike((5, 10), 0.4)
    t = profile(lin, x).totals
    assert t["sops"] == int(x.sum()) * 7 and t["macs"] == 0
    t = profile(lin, x * 0.5).totals
    assert t["macs"] == 5 * 7 * 10 and t["sops"] == 0


# --------------------------------------------------------------------------- property tests


@settings(max_examples=60, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    cin_per_group=st.integers(1, 3),
    cout_per_group=st.integers(1, 3),
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 3),
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    h=st.integers(6, 12),
    w=st.integers(6, 12),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_conv_sops_equal_input_convolved_with_ones(
    groups, cin_per_group, cout_per_group, k, stride, dilation, padding, mode, h, w, p, seed
):
    if mode == "reflect" and padding >= min(h, w):
        padding = min(h, w) - 1
    span = dilation * (k - 1) + 1
    if span > min(h, w) + 2 * padding:
        return
    conv = nn.Conv2d(
        groups * cin_per_group,
        groups * cout_per_group,
        k,
        stride,
        padding,
        dilation,
        groups,
        bias=False,
        padding_mode=mode,
    )
    x = _spike((2, groups * cin_per_group, h, w), p, seed)
    got = profile(conv, x).totals["sops"]
    assert got == _brute_conv_sops(conv, x), f"expected {_brute_conv_sops(conv, x)}, found {got}"


@settings(max_examples=30, deadline=None)
@given(
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    ceil=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_avg_pool_sops_equal_window_sums(k, stride, padding, ceil, seed):
    if padding > k // 2:
        padding = k // 2
    pool = nn.AvgPool2d(k, stride, padding, ceil_mode=ceil)
    x = _spike((2, 3, 9, 10), 0.3, seed)
    out_h, out_w = pool(x).shape[-2:]
    expected = 0  # every pooling window's spike count, window by window
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * stride - padding, j * stride - padding
            expected += int(x[..., max(r0, 0) : max(r0 + k, 0), max(c0, 0) : max(c0 + k, 0)].sum())
    assert profile(pool, x).totals["sops"] == expected


# --------------------------------------------------------------------------- agreement with spikingjelly


def _sj_synops(module, x) -> int:
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

    counter = SynOpCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        module(x)
    return int(counter.get_total())


@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.Conv2d(4, 8, 3, padding=1, bias=False), (2, 4, 12, 12)),
        (nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=1), (2, 4, 13, 11)),
        (nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2, bias=False), (1, 4, 10, 10)),
        (nn.Conv2d(3, 6, 5, stride=3, padding=0), (2, 3, 17, 14)),
        (nn.Conv1d(3, 5, 3, padding=1), (2, 3, 20)),
        (nn.Linear(16, 9), (6, 16)),
        (nn.Linear(16, 9, bias=False), (3, 4, 16)),
    ],
)
def test_agrees_with_spikingjelly_synop_counter(module, shape):
    x = _spike(shape, 0.35, seed=7)
    ours = profile(module, x).totals["sops"]
    theirs = _sj_synops(module, x)
    assert ours == theirs, f"spikingjelly SynOpCounter: {theirs}, ours: {ours}"


# --------------------------------------------------------------------------- neurons, spike tracking


def test_neuron_updates_multi_step_and_single_step_agree():
    from spikingjelly.activation_based import functional, neuron

    t_steps, b, n = 5, 3, 7
    x = torch.rand(t_steps, b, n)
    multi = nn.Sequential(neuron.LIFNode(step_mode="m"))
    r_multi = profile(multi, x)
    functional.reset_net(multi)
    single = neuron.LIFNode(step_mode="s")

    def run_single(m):
        for t in range(t_steps):
            m(x[t])

    r_single = profile(single, forward=run_single)
    for r in (r_multi, r_single):
        assert r.totals["neuron_updates"] == t_steps * b * n
        assert r.totals["state_reads"] == t_steps * b * n == r.totals["state_writes"]
    assert r_multi.per_layer["spiking"].all()


def test_snntorch_leaky_updates_per_call():
    import snntorch as snn

    lif = snn.Leaky(beta=0.8)
    x = torch.rand(4, 3, 6)

    def run(m):
        mem = m.init_leaky()
        for t in range(4):
            _, mem = m(x[t], mem)

    r = profile(lif, forward=run)
    assert r.totals["neuron_updates"] == 4 * 3 * 6
    assert r.per_layer.loc[0, "calls"] == 4


def test_spike_tracking_through_neurons_and_max_pool():
    from spikingjelly.activation_based import layer, neuron

    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, step_mode="m"),
        neuron.IFNode(step_mode="m", v_threshold=0.2),  # stateful: reset before re-running
        layer.MaxPool2d(2, step_mode="m"),
        layer.Conv2d(4, 4, 3, padding=1, step_mode="m"),
    )
    x = torch.rand(3, 2, 1, 8, 8)
    r = profile(net, x)
    rows = r.per_layer.set_index("name")
    assert not rows.loc["0", "binary_input"] and rows.loc["0", "macs"] > 0
    assert rows.loc["3", "binary_input"] and rows.loc["3", "macs"] == 0
    from spikingjelly.activation_based import functional

    functional.reset_net(net)
    with torch.no_grad():
        spikes = net[2](net[1](net[0](x)))
    assert rows.loc["3", "sops"] == _brute_conv_sops(nn.Conv2d(4, 4, 3, padding=1), spikes.flatten(0, 1))


def test_binary_input_decided_from_values_without_producer():
    lin = nn.Linear(8, 4)
    x = _spike((3, 8), 0.5)

    def run(m):
        m(x.clone())  # a fresh tensor: not marked as spikes, decided from its values

    assert profile(lin, forward=run).totals["sops"] == int(x.sum()) * 4
    y = x.clone()
    y[0, 0] = 0.5

    def run_dense(m):
        m(y)

    t = profile(lin, forward=run_dense).totals
    assert t["sops"] == 0 and t["macs"] == 3 * 4 * 8


# --------------------------------------------------------------------------- memory


def test_weight_reads_per_step_and_no_reuse_bound():
    from spikingjelly.activation_based import layer

    conv = layer.Conv2d(2, 3, 3, padding=1, step_mode="m")
    x = _spike((4, 2, 2, 6, 6), 0.3)
    r = profile(conv, x)
    params = sum(p.numel() for p in conv.parameters())
    assert r.totals["weight_reads"] == params * 4  # once per time step
    r_none = profile(conv, x, reuse="none")
    out_elems = 4 * 2 * 3 * 6 * 6
    assert r_none.totals["weight_reads"] == r_none.totals["sops"] + out_elems  # one per SOP + bias per output
    assert r.totals["act_reads"] == x.numel() and r.totals["act_writes"] == out_elems
    with pytest.raises(ConfigError):
        profile(conv, x, reuse="sometimes")


def test_unknown_layer_is_listed_not_zero():
    class Mystery(nn.Module):
        def forward(self, x):
            return x * 2

    net = nn.Sequential(nn.Linear(4, 4), Mystery())
    r = profile(net, torch.rand(2, 4))
    assert [d["type"] for d in r.not_counted] == ["Mystery"]
    row = r.per_layer[r.per_layer["type"] == "Mystery"].iloc[0]
    assert not row["counted"]
    assert r.totals["not_counted_modules"] == 1
    with pytest.raises(ConfigError, match="Mystery"):
        profile(net, torch.rand(2, 4), strict=True)


def test_multihead_attention_counts():
    mha = nn.MultiheadAttention(16, 4).eval()
    x = torch.rand(5, 2, 16)  # [L, N, E]
    t = profile(mha, (x, x, x)).totals
    proj = 3 * 5 * 2 * 16 * 16
    scores = 2 * 4 * 5 * 5 * 4 * 2 + 3 * 2 * 4 * 5 * 5
    assert t["macs"] == proj + scores + 5 * 2 * 16 * 16


def test_hooks_are_removed_and_results_unchanged():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    x = torch.rand(2, 1, 8, 8)
    before = net(x)
    profile(net, x)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert torch.equal(before, net(x))


def test_ms_resnet18_profile_is_consistent():
    from spikingjelly.activation_based.model import ms_resnet

    m = ms_resnet.ms_resnet18(T=2, in_channels=1, num_classes=5).eval()
    x = _spike((2, 2, 1, 32, 32), 0.2)
    r = profile(m, x, samples=2)
    df = r.per_layer
    assert r.not_counted == []
    assert (df["type"] == "LIFNode").sum() == 17
    # every LIF fires on [T, B, C, H, W]: updates equal input elements
    lif = df[df["type"] == "LIFNode"]
    assert (lif["neuron_updates"] == lif["act_reads"]).all()
    assert r.totals["sops"] == df["sops"].sum()
    assert math.isclose(r.totals["mem_accesses"], df["mem_accesses"].sum())
