"""NIR export of the FSVE's spiking CNN: file and round trip, snnTorch and spikingjelly imports against the
project's CNN, threshold ties, refusals (ANN, converted, unmappable modules), the export pipeline."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from export_helpers import small_checkpoint
from spikingjelly.activation_based import layer, neuron

from export.cnn import find_spiking_cnn
from export.nir_export import DT, NIR_FILE, build_nir, module_graph, write_nir
from export.nir_verify import compare_importers, hsfe_features, verify_nir
from export.verify import verify_inputs
from fsve import make_lif
from spklip.io import LoadedSPKLIP, load_spklip
from spklip_energy.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")
#: stated bounds: fraction of identical spikes, and fraction of output elements within 1e-4 relative
MIN_SPIKE_AGREEMENT, MAX_OUTPUT_OVER_TOL = 0.999, 0.01
ARRAYS = ("weight", "bias", "tau", "r", "v_leak", "v_threshold", "v_reset", "kernel_size", "stride", "padding")


def _checkpoint(tmp, data, model: str, **overrides):
    return small_checkpoint(tmp, data, model, calibrate=model != "spklip", **overrides)


@pytest.fixture(scope="module")
def msresnet_ckpt(tmp_path_factory, data):
    # two blocks in stage 1: identity shortcuts, so some nodes sum three terms; 3 stages: layer4 is Identity
    return _checkpoint(tmp_path_factory.mktemp("ms"), data, "fsve-full", **{"fsve.layers": [2, 1, 1]})


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory, data):
    return _checkpoint(
        tmp_path_factory.mktemp("plain"),
        data,
        "fsve-hybrid",
        **{"fsve.cnn": "plain", "fsve.layers": [1, 1, 1], "fsve.time_steps": 3},
    )


def _incoming(graph, node: str) -> set[str]:
    return {a for a, b in graph.edges if b == node}


def test_file_written_and_read_back_equal(tmp_path, msresnet_ckpt):
    loaded = load_spklip(msresnet_ckpt)
    rec = write_nir(loaded, tmp_path, {})
    json.dumps(rec)
    meta = rec["nir"]
    assert (tmp_path / NIR_FILE).is_file() and meta["file"] == NIR_FILE
    assert meta["input"]["shape"] == [16, 32, 32] and meta["output"]["shape"] == [64]
    assert meta["time_steps"] == 2 and meta["dt"] == DT and "visual.starnet.spatial" in meta["exported"]
    assert "HSFE" in rec["host"]["before"] and "E-SDSA" in rec["host"]["after"]

    got = nir.read(tmp_path / NIR_FILE)
    want, path = build_nir(loaded)
    assert path == "visual.starnet.spatial"
    assert set(got.nodes) == set(want.nodes) and len(got.nodes) == meta["nodes"]
    assert set(map(tuple, got.edges)) == set(want.edges) and len(got.edges) == meta["edges"]
    for name, node in want.nodes.items():
        assert type(got.nodes[name]) is type(node), name
        for attr in ARRAYS:
            if hasattr(node, attr) and getattr(node, attr) is not None:
                assert np.array_equal(np.asarray(getattr(got.nodes[name], attr)), np.asarray(getattr(node, attr))), (
                    name,
                    attr,
                )
    assert got.nodes["layer1.0.conv1"].metadata["folded_bn"] == "visual.starnet.spatial.layer1.0.bn1"
    assert got.metadata["module"] == "visual.starnet.spatial" and got.metadata["kind"] == "fsve-full"
    types = {type(n).__name__ for n in got.nodes.values()}
    assert types == {"Input", "Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine", "Output"}

    # LIF conventions: tau = dt * tau_sj, r = tau_sj, v_leak = v_reset = 0, v_threshold = V_th
    lif = got.nodes["layer1.0.spike1"]
    assert lif.tau.shape == (8, 32, 32) and lif.tau.dtype == np.float32
    assert np.allclose(lif.tau, DT * 4 / 3, rtol=1e-6) and np.allclose(lif.r, 4 / 3, rtol=1e-6)
    assert not lif.v_leak.any() and not lif.v_reset.any() and np.all(lif.v_threshold == 0.5)

    # membrane shortcuts: NIR sums incoming edges, no extra node
    assert _incoming(got, "layer1.1.spike1") == {"layer1.0.conv2", "layer1.0.downsample.0"}
    assert _incoming(got, "layer2.0.spike1") == {"layer1.1.conv2", "layer1.0.conv2", "layer1.0.downsample.0"}
    assert _incoming(got, "layer2.0.downsample.0") == _incoming(got, "layer2.0.spike1")
    assert _incoming(got, "head_lif") == {"layer3.0.conv2", "layer3.0.downsample.0"}
    assert "layer4" not in " ".join(got.nodes)  # Identity: no node
    pool = got.nodes["avgpool"]
    assert list(pool.kernel_size) == [4, 4] and list(pool.stride) == [4, 4] and got.nodes["flatten"].start_dim == 0

    # tdBN folded into the convolution at eval statistics
    _, cnn = find_spiking_cnn(loaded, "NIR")
    block = cnn.layer1[0]
    conv = got.nodes["layer1.0.conv1"]
    x = (torch.rand(3, 8, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        want_y = block.bn1(block.conv1(x.unsqueeze(0)))[0]  # multi-step layers: [T=1, N, C, H, W]
    got_y = F.conv2d(
        x, torch.from_numpy(conv.weight), torch.from_numpy(conv.bias), tuple(conv.stride), tuple(conv.padding)
    )
    assert torch.allclose(got_y, want_y, atol=1e-5)


@pytest.mark.parametrize("which", ["msresnet", "plain"])
def test_snntorch_and_spikingjelly_imports_reproduce_the_project(tmp_path, which, msresnet_ckpt, plain_ckpt, data):
    loaded = load_spklip(msresnet_ckpt if which == "msresnet" else plain_ckpt)
    write_nir(loaded, tmp_path, {})
    res = verify_nir(loaded, tmp_path, data, samples=2)
    json.dumps(res)
    _, cnn = find_spiking_cnn(loaded, "NIR")
    n_lif = sum(isinstance(m, neuron.LIFNode) for m in cnn.modules())
    assert res["inputs"] == 2 * loaded.model.cfg.hsfe.n_blocks and res["time_steps"] == loaded.model.cfg.fsve.time_steps
    assert 0.02 < res["project_spike_rate"] < 0.6  # the networks are active: the comparison is not vacuous
    for importer in ("snntorch", "spikingjelly"):
        fig = res[importer]
        assert fig["ok"], (importer, fig)
        assert fig["neuron_nodes_compared"] == n_lif
        assert fig["spike_agreement"] >= MIN_SPIKE_AGREEMENT, (importer, fig)
        assert fig["frac_elements_over_tol"] <= MAX_OUTPUT_OVER_TOL, (importer, fig)
    assert res["ok"]


def test_a_changed_threshold_is_seen_and_located(tmp_path, msresnet_ckpt, data):
    loaded = load_spklip(msresnet_ckpt)
    graph, _ = build_nir(loaded)
    lif = graph.nodes["layer1.0.spike2"]
    lif.v_threshold = lif.v_threshold * np.float32(1.05)  # 0.5 -> 0.525
    nir.write(tmp_path / "changed.nir", graph)
    _, cnn = find_spiking_cnn(loaded, "NIR")
    x = hsfe_features(loaded, verify_inputs(loaded, data, 1)[0])
    res = compare_importers(tmp_path / "changed.nir", cnn, x, loaded.model.cfg.fsve.time_steps)
    for importer in ("snntorch", "spikingjelly"):
        fig = res[importer]
        first = fig["first_differing_node"]
        assert fig["spike_agreement"] < 1.0 and first["node"] == "layer1.0.spike2", fig
        assert first["step"] == 0 and first["max_abs_v_minus_vth"] < 0.025 + 1e-6  # u in [0.5, 0.525)


def test_threshold_ties_and_spikingjellys_own_exporter(tmp_path):
    """u == V_th exactly: the project and spikingjelly fire (>=), NIR's and snnTorch's v > v_threshold does not."""
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    conv = layer.Conv2d(1, 2, 1, bias=False, step_mode="m")
    with torch.no_grad():
        conv.weight.fill_(1.0)
    net = nn.Sequential(conv, make_lif(v_threshold=0.5, decay=0.25))
    x = torch.tensor([0.5, 0.25, 0.4, 0.7]).reshape(1, 1, 2, 2).repeat(3, 1, 1, 1)
    graph = module_graph(net, (1, 2, 2), "chain")
    sj = export_to_nir(net, torch.rand(2, 1, 1, 2, 2))
    sj_lif = next(n for n in sj.nodes.values() if isinstance(n, nir.LIF))
    for attr in ("tau", "r", "v_leak", "v_threshold", "v_reset"):  # same conventions as spikingjelly's exporter
        assert np.allclose(getattr(graph.nodes["1"], attr), getattr(sj_lif, attr), rtol=1e-6), attr
    nir.write(tmp_path / "tie.nir", graph)
    res = compare_importers(tmp_path / "tie.nir", net, x, 3)
    assert res["spikingjelly"]["spike_agreement"] == 1.0
    first = res["snntorch"]["first_differing_node"]
    # step 0: exactly the 3 samples x 2 channels at u = 0.5 differ, with zero margin
    assert first["step"] == 0 and first["differing_at_step"] == 6 and first["max_abs_v_minus_vth"] == 0.0


def test_chain_of_project_parts_with_an_if_neuron(tmp_path):
    """conv + tdBN + LIF + pooling + flatten + linear + IF: spikingjelly reproduces it; snnTorch's importer
    refuses nir.IF with r = 1/dt (it asserts r == 1)."""
    g = torch.Generator().manual_seed(3)
    conv = layer.Conv2d(2, 4, 3, padding=1, bias=False, step_mode="m")
    bn = layer.ThresholdDependentBatchNorm2d(1.0, 0.5, 4)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        bn.running_mean.copy_(torch.randn(4, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(4, generator=g) * 0.1)
    net = nn.Sequential(
        conv,
        bn,
        make_lif(0.5, 0.25),
        layer.AvgPool2d(2, step_mode="m"),
        layer.Flatten(start_dim=1, step_mode="m"),
        layer.Linear(4 * 4 * 4, 5, step_mode="m"),
        neuron.IFNode(v_threshold=0.3, v_reset=0.0, step_mode="m"),
    ).eval()
    graph = module_graph(net, (2, 8, 8), "chain")
    assert [type(graph.nodes[k]).__name__ for k in ("0", "2", "3", "4", "5", "6")] == [
        "Conv2d",
        "LIF",
        "AvgPool2d",
        "Flatten",
        "Affine",
        "IF",
    ]
    assert "1" not in graph.nodes  # the BN is folded into node "0"
    nir.write(tmp_path / "chain.nir", graph)
    x = torch.rand(4, 2, 8, 8, generator=g)
    res = compare_importers(tmp_path / "chain.nir", net, x, 4)
    assert 0.02 < res["project_spike_rate"] < 0.9
    assert res["spikingjelly"]["ok"] and res["spikingjelly"]["spike_agreement"] >= MIN_SPIKE_AGREEMENT
    assert res["spikingjelly"]["neuron_nodes_compared"] == 2
    assert not res["snntorch"]["ok"] and "r != 1" in res["snntorch"]["reason"]


def test_ann_and_converted_checkpoints_are_refused(tmp_path, data, msresnet_ckpt):
    ann = load_spklip(_checkpoint(tmp_path, data, "spklip"))
    with pytest.raises(ConfigError, match=r"'spklip' checkpoint is an ANN") as exc:
        write_nir(ann, tmp_path / "out", {})
    assert "\n" not in str(exc.value)
    spiking = load_spklip(msresnet_ckpt)
    converted = LoadedSPKLIP(
        spiking.model, spiking.tokenizer, {**spiking.card, "kind": "spklip-converted"}, spiking.checkpoint
    )
    with pytest.raises(ConfigError, match=r"'spklip-converted' checkpoint cannot be exported to NIR") as exc:
        write_nir(converted, tmp_path / "out", {})
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_unmappable_modules_are_named(msresnet_ckpt, plain_ckpt):
    loaded = load_spklip(msresnet_ckpt)
    _, cnn = find_spiking_cnn(loaded, "NIR")
    cnn.layer1[0].spike2 = nn.ReLU()
    with pytest.raises(ConfigError, match=r"^visual\.starnet\.spatial\.layer1\.0\.spike2: ReLU has no NIR equivalent"):
        build_nir(loaded)
    loaded = load_spklip(msresnet_ckpt)
    find_spiking_cnn(loaded, "NIR")[1].layer2[0].spike1.v_reset = None
    with pytest.raises(ConfigError, match=r"^visual\.starnet\.spatial\.layer2\.0\.spike1: LIFNode with a soft reset"):
        build_nir(loaded)
    loaded = load_spklip(plain_ckpt)
    find_spiking_cnn(loaded, "NIR")[1].avgpool = layer.MaxPool2d(2, step_mode="m")
    with pytest.raises(ConfigError, match=r"^visual\.starnet\.spatial\.avgpool: MaxPool2d has no NIR equivalent"):
        build_nir(loaded)


def test_export_pipeline_writes_the_nir_folder(tmp_path, msresnet_ckpt, data, capsys):
    from export.pipeline import export_checkpoint
    from spklip_energy.cli import main

    rec = export_checkpoint(msresnet_ckpt, tmp_path / "out", "nir", verify=True, data=data, samples=1)
    assert set(rec["files"]) == {"export.json", NIR_FILE, "hsfe_mtf.nir", "hsfe_sa_gate.nir", "hsfe_trunk.nir"}
    meta = json.loads((tmp_path / "out" / "export.json").read_text())
    assert meta["format"] == "nir" and meta["kind"] == "fsve-full" and meta["nir"]["file"] == NIR_FILE
    assert meta["verify"]["ok"] and meta["verify"]["clips"] == 1
    # the CLI prints one line per importer and exits 0 when both reproduce the project's spikes
    assert (
        main(
            [
                "export",
                str(msresnet_ckpt),
                "--format",
                "nir",
                "--out",
                str(tmp_path / "cli"),
                "--verify",
                "--data",
                str(data),
                "--samples",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "snntorch: ok, identical spikes" in out and "spikingjelly: ok, identical spikes" in out
