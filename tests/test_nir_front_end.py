"""NIR export of the spiking front end's chain parts: the graphs hold the project's weights (mask and tdBN
folded, branch slices and concatenation by zero weights, the long skip), snnTorch and spikingjelly reproduce
each part's spikes on its real inputs, a changed part is caught, unmappable modules are named, the CLI."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from cli_helpers import check_user_error, run_main
from export_helpers import small_checkpoint

from export.cnn import fold_bn
from export.nir_export import NIR_FILE, write_nir
from export.nir_front_end import (
    GATE_FILE,
    MTF_FILE,
    TRUNK_FILE,
    front_end_parts,
    mtf_graph,
    part_inputs,
    verify_front_end,
    write_parts,
)
from export.nir_verify import compare_importers
from export.verify import verify_inputs
from fsve.hsfe import encode_steps
from spklip.hsfe import temporal_blocks
from spklip.io import load_spklip
from spklip_energy.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def default_ckpt(tmp_path_factory, data):
    """The tiny preset's spiking front end with sub-windows (SA, one trunk block), calibrated BN statistics."""
    return small_checkpoint(
        tmp_path_factory.mktemp("fe"), data, "fsve-full", calibrate=True, **{"fsve.hsfe_encoding": "subwindows"}
    )


@pytest.fixture(scope="module")
def other_ckpt(tmp_path_factory, data):
    """Other members of the class: repeat encoding, no SA, two trunk blocks, three branches, three steps."""
    return small_checkpoint(
        tmp_path_factory.mktemp("fe2"),
        data,
        "fsve-full",
        calibrate=True,
        **{
            "fsve.hsfe_encoding": "repeat",
            "hsfe.sa": False,
            "hsfe.trunk_blocks": 2,
            "hsfe.branches": 3,
            "fsve.time_steps": 3,
        },
    )


def _w(node) -> torch.Tensor:
    return torch.from_numpy(np.asarray(node.weight)).double()


def _incoming(graph, node: str) -> set[str]:
    return {a for a, b in graph.edges if b == node}


def test_graphs_hold_the_folded_weights(tmp_path, default_ckpt):
    loaded = load_spklip(default_ckpt)
    hsfe = loaded.model.visual.hsfe.eval()
    with torch.no_grad():  # masks away from 1, so the folding is seen
        for br in hsfe.branches:
            br.conv1.mask.mul_(torch.linspace(0.3, 1.7, br.conv1.mask.numel()).reshape(br.conv1.mask.shape))
    desc = write_parts(loaded, tmp_path)
    assert [p["file"] for p in desc["parts"]] == [MTF_FILE, GATE_FILE, TRUNK_FILE]
    mtf = nir.read(tmp_path / MTF_FILE)
    k_all = len(hsfe.branches)
    frames = loaded.model.cfg.hsfe.block_frames()
    for k, br in enumerate(hsfe.branches):
        conv1 = mtf.nodes[f"branches.{k}.conv1"]
        w = _w(conv1)
        assert w.shape[1] == frames
        assert not w[:, : br.lo].any() and not w[:, br.hi :].any()  # the branch's frames only
        g = br.bn1.weight.double() / torch.sqrt(br.bn1.running_var.double() + br.bn1.eps)
        want = br.conv1.folded_weight().double() * g.reshape(-1, 1, 1, 1)  # mask, then tdBN, folded
        assert torch.allclose(w[:, br.lo : br.hi], want.detach(), rtol=1e-5, atol=1e-7)
        w2 = _w(mtf.nodes[f"branches.{k}.conv2"])
        b2 = np.asarray(mtf.nodes[f"branches.{k}.conv2"].bias)
        assert w2.shape[0] == k_all and w2[k].any()
        assert not torch.cat([w2[:k], w2[k + 1 :]]).any() and not np.delete(b2, k).any()  # only channel k
        assert list(mtf.nodes[f"branches.{k}.lif2"].v_threshold.shape) == [k_all, 32, 32]
    assert _incoming(mtf, "concat") == {f"branches.{k}.lif2" for k in range(k_all)}
    assert torch.equal(_w(mtf.nodes["concat"])[:, :, 0, 0], torch.eye(k_all, dtype=torch.float64))
    assert _incoming(mtf, "output") == {"concat"}

    gate = nir.read(tmp_path / GATE_FILE)
    assert {"sa.conv1", "sa.lif1", "sa.conv2", "sa.gate"} <= set(gate.nodes)

    trunk = nir.read(tmp_path / TRUNK_FILE)
    head_w, head_b = fold_bn(hsfe.head[0], hsfe.head[1])
    for name in ("head.0", "head.long_skip"):  # the long skip: the head's current a second time
        assert torch.allclose(_w(trunk.nodes[name]), head_w, rtol=1e-5, atol=1e-7)
        assert np.allclose(trunk.nodes[name].bias, head_b.numpy(), rtol=1e-5, atol=1e-7)
        assert _incoming(trunk, name) == {"input"}
    assert _incoming(trunk, "out_lif") == {"trunk.0.body.7", "head.0", "head.long_skip"}
    assert _incoming(trunk, "trunk.0.body.0") == {"head.0"}


@pytest.mark.parametrize("which", ["default", "other"])
def test_importers_reproduce_every_part(tmp_path, which, default_ckpt, other_ckpt, data):
    loaded = load_spklip(default_ckpt if which == "default" else other_ckpt)
    write_parts(loaded, tmp_path)
    spikes, _ = verify_inputs(loaded, data, 2)
    res = verify_front_end(loaded, tmp_path, spikes)
    json.dumps(res)
    cfg = loaded.model.cfg
    want = ["mtf", "sa_gate", "trunk"] if cfg.hsfe.sa else ["mtf", "trunk"]
    assert [k for k in res if k != "ok"] == want
    n_lif = {"mtf": 2 * cfg.hsfe.branches, "sa_gate": 2, "trunk": 1 + 3 * cfg.hsfe.trunk_blocks}
    for part in want:
        r = res[part]
        assert 0.02 < r["project_spike_rate"] < 0.6, (part, r)  # active: the comparison is not vacuous
        for importer in ("snntorch", "spikingjelly"):
            fig = r[importer]
            assert fig["ok"], (part, importer, fig)
            assert fig["neuron_nodes_compared"] == n_lif[part]
            assert fig["spike_agreement"] >= 0.999 and fig["frac_elements_over_tol"] <= 0.01, (part, importer, fig)
    assert res["ok"]


def test_the_inputs_are_the_project_forward(default_ckpt, data):
    """Chaining the parts' references on their inputs gives the front end's own output."""
    loaded = load_spklip(default_ckpt)
    spikes, _ = verify_inputs(loaded, data, 1)
    parts = {p.name: p for p in front_end_parts(loaded)}
    inputs = part_inputs(loaded, spikes)
    x = inputs["mtf"]
    assert set(x.unique().tolist()) <= {0.0, 1.0} and x.shape[0] == loaded.model.cfg.fsve.time_steps
    with torch.no_grad():
        est = parts["mtf"].reference(x)
        assert torch.equal(est, inputs["sa_gate"])
        out = parts["trunk"].reference(est * parts["sa_gate"].reference(est))
        cfg = loaded.model.cfg
        want = loaded.model.visual.hsfe(temporal_blocks(spikes[:, : cfg.frames].float(), cfg.hsfe))
    assert torch.equal(out, want)


def test_a_changed_front_end_is_caught(tmp_path, default_ckpt, data):
    loaded = load_spklip(default_ckpt)
    write_parts(loaded, tmp_path)
    graph = nir.read(tmp_path / MTF_FILE)
    conv = graph.nodes["branches.1.conv1"]
    conv.weight = conv.weight * np.float32(1.2)
    nir.write(tmp_path / "changed.nir", graph)
    spikes, _ = verify_inputs(loaded, data, 1)
    part = front_end_parts(loaded)[0]
    res = compare_importers(
        tmp_path / "changed.nir",
        part.reference,
        part_inputs(loaded, spikes)["mtf"],
        loaded.model.cfg.fsve.time_steps,
        widened=part.widened,
    )
    for importer in ("snntorch", "spikingjelly"):
        fig = res[importer]
        assert fig["spike_agreement"] < 1.0 and fig["max_rel_error"] > 1e-3, fig
        assert fig["first_differing_node"]["node"] == "branches.1.lif1", fig


def test_unmappable_front_end_modules_are_named(default_ckpt):
    loaded = load_spklip(default_ckpt)
    loaded.model.visual.hsfe.trunk[0].body[3] = nn.ReLU()
    with pytest.raises(ConfigError, match=r"^visual\.hsfe\.trunk\.0\.body\.3: ReLU has no NIR equivalent"):
        front_end_parts(loaded)
    loaded = load_spklip(default_ckpt)
    loaded.model.visual.hsfe.sa.lif1.v_reset = None
    with pytest.raises(ConfigError, match=r"^visual\.hsfe\.sa\.lif1: LIFNode with a soft reset"):
        front_end_parts(loaded)


def test_ann_front_end_writes_no_parts(tmp_path, data):
    ck = small_checkpoint(tmp_path, data, "fsve-full", **{"fsve.hsfe": "ann"})
    assert write_parts(load_spklip(ck), tmp_path / "none") is None and not (tmp_path / "none").exists()


def test_cli_exports_and_verifies_the_parts(tmp_path, capsys, default_ckpt, data):
    out = tmp_path / "nir"
    rc, stdout, err = run_main(
        capsys, "export", default_ckpt, "--format", "nir", "--out", out, "--verify", "--data", data, "--samples", "1"
    )
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(["export.json", NIR_FILE, MTF_FILE, GATE_FILE, TRUNK_FILE])
    for f in (MTF_FILE, GATE_FILE, TRUNK_FILE):
        assert f"front end {f}: snntorch ok (100.000% identical spikes), spikingjelly ok" in stdout
    rec = json.loads((out / "export.json").read_text())
    fe = rec["nir"]["front_end"]
    assert any("visual.hsfe.sa multiplies" in s for s in fe["host_steps"]) and rec["verify"]["front_end"]["ok"]
    # a front end that cannot be held: refused naming the module before any file is written
    loaded = load_spklip(default_ckpt)
    loaded.model.visual.hsfe.branches[0].lif1.v_reset = None
    (tmp_path / "bad").mkdir()
    with pytest.raises(ConfigError, match=r"^visual\.hsfe\.branches\.0\.lif1: LIFNode with a soft reset"):
        write_nir(loaded, tmp_path / "bad", {})
    assert not any((tmp_path / "bad").iterdir())


def test_lava_names_what_netx_cannot_hold(tmp_path, capsys, default_ckpt):
    rc, _, err = run_main(capsys, "export", default_ckpt, "--format", "lava", "--out", tmp_path / "lava")
    check_user_error(rc, err, "visual.hsfe", "visual.hsfe.branches", "visual.hsfe.sa", "visual.hsfe.trunk")
    assert not (tmp_path / "lava").exists()


def test_folded_first_layer_matches_per_step_convolution(default_ckpt):
    """The MTF graph's first convolution on an encoded step equals the project's per-step current."""
    loaded = load_spklip(default_ckpt)
    hsfe = loaded.model.visual.hsfe.eval()
    br = hsfe.branches[0]
    g = torch.Generator().manual_seed(3)
    frames = loaded.model.cfg.hsfe.block_frames()
    block = (torch.rand(2, frames, 32, 32, generator=g) < 0.2).float()
    steps = encode_steps(block, loaded.model.cfg.fsve.time_steps, "subwindows")
    mtf, _ = mtf_graph(hsfe, (frames, 32, 32), "t")
    node = mtf.nodes["branches.0.conv1"]
    with torch.no_grad():
        want = br.bn1(br.conv1(block[:, br.lo : br.hi]))  # [T, N, C, H, W]
        for t in range(steps.shape[0]):
            got = F.conv2d(
                steps[t].double(),
                _w(node),
                torch.from_numpy(np.asarray(node.bias)).double(),
                padding=tuple(node.padding),
            )
            assert torch.allclose(got.float(), want[t], atol=1e-4), t
