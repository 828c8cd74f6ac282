"""The fixed-point reference against Lava's own simulator (lava-nc 0.10.0 + lava-dl 0.6.0, ``fixed_pt``),
run in the separate Lava environment (``make lava-env``; ``make test`` builds it). Skipped where that
environment is missing, except under CI, where its absence fails."""

from __future__ import annotations

import os

import numpy as np
import pytest
from export_helpers import small_digits
from test_lava import GT, _random_net

from export.loihi_engine import simulate
from export.netx_format import read_netx, write_netx
from export.simulate import lava_python, run_lava
from spklip_energy.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

if lava_python() is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI: the Lava environment is missing (make test builds it with tools/setup_lava_env.sh)")
    pytest.skip("Lava environment not built (make lava-env)", allow_module_level=True)


def _agree(res, lava, with_state: bool = False) -> None:
    for i, s in res.spikes.items():
        got = lava[f"spikes_{i}"].reshape(s.shape).astype(bool)
        assert np.array_equal(got, s), f"layer {i}: {int((got != s).sum())} spikes differ"
        if with_state:
            assert np.array_equal(lava[f"u_{i}"].reshape(s.shape), res.traces[i]["u"]), f"layer {i} u"
            assert np.array_equal(lava[f"v_{i}"].reshape(s.shape), res.traces[i]["v"]), f"layer {i} v"


@pytest.mark.skipif(not (GT / "tiny.net").is_file(), reason="../shared/lava-netx-gt not present")
def test_lava_and_reference_agree_on_tiny_net_state_included():
    net = read_netx(GT / "tiny.net")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, (16, 1, 3, 16, 16)) * 25
    res = simulate(net, a, record=True)
    assert res.output.sum() > 0
    _agree(res, run_lava(GT / "tiny.net", a, record=True), with_state=True)


def test_lava_and_reference_agree_on_a_written_network_with_clipped_dense_weights(tmp_path):
    rng = np.random.default_rng(3)
    net = _random_net(rng)
    net.layers[-1].weight = net.layers[-1].weight * 6  # up to 600: netx clips dense weights to [-256, 254]
    path = write_netx(tmp_path / "r.net", net)
    loaded = read_netx(path)
    assert loaded.warnings() and "clipped" in loaded.warnings()[0]
    a = rng.integers(0, 3, (14, 2, 2, 9, 8)) * 25
    res = simulate(loaded, a)
    assert all(s.sum() > 0 for s in res.spikes.values())
    _agree(res, run_lava(path, a))


def test_simulate_engine_both_on_an_fsve_export(tmp_path, capsys):
    """The clip's 5 blocks pipelined with per-layer resets (netx reset_interval), in one Lava network."""
    from test_lava import _checkpoint

    from export import export_checkpoint
    from export.simulate import run_simulation

    data = small_digits(tmp_path / "digits")
    ckpt = _checkpoint(tmp_path, data, "plain")
    export_checkpoint(ckpt, tmp_path / "lava", fmt="lava")
    net_path = tmp_path / "lava" / "visual_cnn.net"
    summary, res = run_simulation(net_path, str(data), engine="both")
    assert summary["schedule"]["reset_interval"] == 2 and res.steps == 5 * 2 + 8
    assert summary["totals"]["spikes"] > 1000
    lv = summary["lava"]
    assert lv["bit_exact"] and all(x["spikes_lava"] == x["spikes_reference"] for x in lv["layers"])
    assert main(["simulate", str(tmp_path / "missing.net"), "--engine", "both"]) == 2
    assert "no such netx file" in capsys.readouterr().err
