"""Lava netx: the fixed-point reference against Lava's own ground truth, counts agreement with the hook
counter, the FSVE export, the simulate verb and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import check_user_error, run_main
from export_helpers import SMALL, small_checkpoint

from energy import profile
from energy.record import SCHEMA_VERSION, EnergyReport
from export import export_checkpoint
from export.loihi_engine import _conv, cuba_lif_run, simulate
from export.loihi_torch import NetxTorch
from export.netx_format import NetxLayer, NetxNet, NetxNeuron, read_netx, write_netx
from export.simulate import run_simulation
from spikedata.dat import write_dat
from spklip import build_spklip, preset_config
from spklip_energy.cli import main
from spklip_energy.errors import ConfigError, DatError

GT = Path(__file__).resolve().parents[1].parent / "shared" / "lava-netx-gt"
needs_gt = pytest.mark.skipif(not (GT / "tiny.net").is_file(), reason="../shared/lava-netx-gt not present")
pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- Lava's ground truth


@needs_gt
def test_tiny_net_is_read_as_lava_describes_it():
    net = read_netx(GT / "tiny.net")
    assert [lay.type for lay in net.layers] == ["input", "conv", "conv"]
    assert [lay.shape for lay in net.layers] == [(3, 16, 16), (24, 6, 6), (36, 1, 1)]
    assert net.layers[0].extra == {"weight": 36.0, "bias": 34.0}  # test_input_transform's figures
    n = net.layers[1].neuron
    assert (n.v_th_mant, n.v_decay, n.i_decay, n.type) == (25, 1024, 4096, "LOIHI")
    # Lava's conv kernel (out, kx, ky, in) is the file's torch kernel flipped and transposed
    lava_kernel = np.load(GT / "gts/tinynet/layer1_kernel.npy")
    assert np.array_equal(lava_kernel, net.layers[1].weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
    assert np.array_equal(np.load(GT / "gts/tinynet/layer1_bias.npy"), net.layers[1].bias)


@needs_gt
def test_input_layer_reproduces_lava_bit_exactly():
    net = read_netx(GT / "tiny.net")
    bias = np.load(GT / "gts/tinynet/input_bias.npy").transpose(2, 1, 0)  # XYZ -> CHW
    lay = net.layers[0]
    s, _, _ = cuba_lif_run(
        np.zeros((15, 3, 16, 16), np.int64), lay.neuron.i_decay, lay.neuron.v_decay, lay.neuron.v_th_mant, bias
    )
    gt = np.load(GT / "gts/tinynet/input.npy")[0]  # C H W T
    assert s.sum() > 100
    assert np.array_equal(s.transpose(1, 2, 3, 0), gt[..., 1:].astype(bool))  # Lava is one step ahead


@needs_gt
def test_conv_block_current_and_spikes_bit_exact():
    net = read_netx(GT / "tiny.net")
    lay = net.layers[1]
    x = np.load(GT / "gts/tinynet/input.npy")[0].transpose(3, 0, 1, 2)  # T C H W
    a = _conv(x, lay)
    # Lava's test_conv resets u and v after its first step: start from step 1 with zero state
    s, _, tr = cuba_lif_run(
        a[1:], lay.neuron.i_decay, lay.neuron.v_decay, lay.neuron.v_th_mant, lay.bias.reshape(-1, 1, 1), record=True
    )
    u_gt = np.load(GT / "gts/tinynet/current.npy")[0].transpose(3, 0, 1, 2) * 64
    s_gt = np.load(GT / "gts/tinynet/layer1.npy")[0].transpose(3, 0, 1, 2)
    assert np.array_equal(tr["u"], u_gt[1:].astype(np.int64))
    assert np.array_equal(s, s_gt[1:].astype(bool))
    assert s.sum() > 500


@needs_gt
def test_whole_tiny_network_output_bit_exact():
    """lava-dl test_tinynet: bias-driven input, Reset(17, offset=i-1), output[..., 2:17] == gt[..., 1:]."""
    net = read_netx(GT / "tiny.net")
    bias = np.load(GT / "gts/tinynet/input_bias.npy").transpose(2, 1, 0)[None]
    steps = 17 + len(net.layers)
    res = simulate(net, np.zeros((steps, 1, 3, 16, 16), np.int64), bias_in=bias, reset_interval=17)
    out = res.output[:, 0].transpose(1, 2, 3, 0)  # C H W T
    gt = np.load(GT / "gts/tinynet/output.npy")[0][..., 1:]
    assert gt.sum() > 50
    assert np.array_equal(out[..., 2:17], gt.astype(bool))
    # without the reset schedule the same network does not match: the test is sensitive
    plain = simulate(net, np.zeros((steps, 1, 3, 16, 16), np.int64), bias_in=bias)
    assert not np.array_equal(plain.output[:, 0].transpose(1, 2, 3, 0)[..., 2:17], gt.astype(bool))


# --------------------------------------------------------------------------- two implementations, counts


def _random_net(rng) -> NetxNet:
    def neuron(vth):
        return NetxNeuron(int(rng.integers(0, 4097)), int(rng.integers(0, 4097)), vth)

    w1 = rng.integers(-40, 41, (6, 2, 3, 3))
    w2 = rng.integers(-20, 21, (4, 3, 3, 3))  # groups 2: 6 -> 4 channels
    w3 = rng.integers(-100, 101, (5, 4 * 3 * 4))
    return NetxNet(
        [
            NetxLayer("input", (2, 9, 8), neuron(20)),
            NetxLayer(
                "conv", (6, 5, 4), neuron(30), weight=w1, bias=rng.integers(-50, 50, 6), stride=(2, 2), padding=(1, 1)
            ),
            NetxLayer("conv", (4, 3, 4), neuron(25), weight=w2, stride=(1, 1), padding=(0, 1), groups=2),
            NetxLayer("flatten", (48, 1, 1)),
            NetxLayer("dense", (5, 1, 1), neuron(40), weight=w3, bias=rng.integers(-9, 9, 5)),
        ]
    )


def test_numpy_engine_and_torch_twin_agree_and_counts_equal_hook_counter(tmp_path):
    rng = np.random.default_rng(3)
    net = _random_net(rng)
    path = write_netx(tmp_path / "r.net", net)
    net = read_netx(path)  # through the file: the round trip is part of the check
    a = rng.integers(0, 3, (14, 3, 2, 9, 8)) * 25
    res = simulate(net, a)
    twin = NetxTorch(net)
    with torch.no_grad():
        out = twin(torch.from_numpy(a))
    for i, s in out.items():
        assert np.array_equal(s.numpy().astype(bool), res.spikes[i].reshape(s.shape)), f"layer {i}"
    counted = profile(twin, forward=lambda m: m(torch.from_numpy(a))).totals
    t = res.totals()
    assert t["synaptic_events"] > 0 and t["spikes"] > 0
    assert counted["sops"] == t["synaptic_events"]
    assert counted["neuron_updates"] == t["neuron_updates"] == sum(lay.neurons for lay in net.layers) * 14 * 3
    assert counted["macs"] == 0


def test_synaptic_events_count_fan_out_at_the_borders():
    """One spike in a corner of a padded 3x3 conv drives 4 output positions per channel."""
    lay = NetxLayer(
        "conv", (2, 4, 4), NetxNeuron(4096, 0, 1000), weight=np.ones((2, 1, 3, 3), np.int64), padding=(1, 1)
    )
    net = NetxNet([NetxLayer("input", (1, 4, 4), NetxNeuron(4096, 4096, 0)), lay])
    a = np.zeros((3, 1, 1, 4, 4), np.int64)
    a[0, 0, 0, 0, 0] = 1  # fires at step 0, delivered at step 1
    res = simulate(net, a)
    assert res.layers[1]["synaptic_events"] == 4 * 2
    a[0, 0, 0, 1, 1] = 1  # an inner pixel: 9 positions
    assert simulate(net, a).layers[1]["synaptic_events"] == (4 + 9) * 2


def test_fixed_point_arithmetic_truncates_toward_zero_and_fires_strictly_above():
    a = np.array([[-3], [0], [0]], np.int64)
    s, _, tr = cuba_lif_run(a, 2048, 4096, 1000, record=True)  # u halves, truncating toward zero
    assert tr["u"][:, 0].tolist() == [-192, -96, -48]
    a = np.array([[1], [0]], np.int64)
    s, _, tr = cuba_lif_run(a, 4096, 4096, 1, record=True)  # v = 64 == vth << 6: no spike
    assert not s.any() and tr["v"][0, 0] == 64


# --------------------------------------------------------------------------- FSVE export, simulate verb


def _checkpoint(tmp: Path, data: Path, cnn: str, hsfe: str = "ann") -> Path:
    """An FSVE with the ANN front end (the deployable one: netx holds the CNN, the host the HSFE)."""
    return small_checkpoint(
        tmp, data, "fsve-full", calibrate=True, name=f"fsve-{cnn}-{hsfe}", **{"fsve.cnn": cnn, "fsve.hsfe": hsfe}
    )


def test_fsve_plain_exports_to_netx_and_simulates(tmp_path, data, capsys):
    ckpt = _checkpoint(tmp_path, data, "plain")
    rec = export_checkpoint(ckpt, tmp_path / "lava", fmt="lava", verify=True, data=data, samples=2)
    net = read_netx(tmp_path / "lava" / "visual_cnn.net")
    assert [lay.type for lay in net.layers] == ["input"] + ["conv"] * 8
    for lay in net.layers[1:]:
        assert -256 <= lay.weight.min() and lay.weight.max() <= 254 and lay.weight.dtype == np.int64
        assert lay.neuron.v_decay == 3072 and lay.neuron.i_decay == 4096  # decay 0.25, no current memory
    with h5py.File(tmp_path / "lava" / "visual_cnn.net") as h:  # what netx reads
        assert h["layer/1/type"][0] == b"conv" and h["layer/1/neuron/type"][()] == b"CUBA"
    ver = rec["verify"]
    first = ver["per_layer"][0]
    assert first["torch_rate"] > 0.01
    assert first["spike_agreement"] > 0.99  # the input layer sees only the rounding of its a_in
    assert ver["per_layer"][1]["spike_agreement"] > 0.99  # one 8-bit conv layer
    # deeper, quantisation flips compound (an untrained net is chaotic), but firing rates stay close
    assert ver["min_spike_agreement"] > 0.7
    assert all(abs(p["loihi_rate"] - p["torch_rate"]) < 0.02 for p in ver["per_layer"])
    c = ver["counts"]  # the hook counter on the same quantised network and input as the simulator
    assert c["agree"] and c["hook_counter"]["sops"] == c["simulator"]["synaptic_events"] > 0
    summary, res = run_simulation(tmp_path / "lava" / "visual_cnn.net", str(data))
    cfg = json.loads((tmp_path / "lava" / "export.json").read_text())["config"]
    blocks, t_steps = cfg["hsfe"]["n_blocks"], cfg["fsve"]["time_steps"]
    assert res.samples == 1 and res.steps == blocks * t_steps + 8  # blocks pipelined, 8 steps of latency
    assert summary["schedule"] == {"reset_interval": t_steps, "blocks": blocks, "per_block": t_steps, "latency": 8}
    assert len(summary["output"]["spikes_per_sample"]) == blocks
    assert summary["totals"]["synaptic_events"] > 0
    assert summary["energy"]["flags"][0].startswith("UNVERIFIED")
    assert summary["seconds"]["simulation"] < 10
    # report NET.net --preset loihi: hook counts on the torch twin, equal to the simulator's, flag carried
    net_file = tmp_path / "lava" / "visual_cnn.net"
    capsys.readouterr()
    assert (
        main(
            [
                "report",
                str(net_file),
                "--data",
                str(data),
                "--preset",
                "loihi",
                "--out",
                str(tmp_path / "rep"),
                "--json",
            ]
        )
        == 0
    )
    text = (tmp_path / "rep" / "summary.json").read_text()
    assert capsys.readouterr().out == text  # --json prints the record as the file holds it
    rep = json.loads(text)
    assert rep["counts_agree_with_simulator"] and rep["counts"]["sops"] == summary["totals"]["synaptic_events"]
    keys = list(rep)  # a netx report: the simulator's counts where a checkpoint report has its parts
    assert "parts" not in rep and keys[-1] == "schema_version" and rep["schema_version"] == SCHEMA_VERSION
    assert keys[keys.index("conventions") + 1 : keys.index("accuracy")] == [
        "simulator_counts",
        "counts_agree_with_simulator",
    ]
    record = EnergyReport.from_json(rep, "summary.json")
    assert record.simulator.agree and record.parts is None and record.to_json() == rep
    assert rep["not_counted"] == [] and any(w.startswith("UNVERIFIED") for w in rep["warnings"])
    assert "UNVERIFIED" in (tmp_path / "rep" / "report.md").read_text()
    short = write_dat(tmp_path / "short.dat", np.zeros((100, 32, 32), np.uint8))  # too few frames for the model
    with pytest.raises(DatError, match=r"short\.dat: cannot read 250 frames .* has 100"):
        run_simulation(tmp_path / "lava" / "visual_cnn.net", str(short))


def test_msresnet_is_refused_naming_the_residual_block(tmp_path, data):
    ckpt = _checkpoint(tmp_path, data, "msresnet")
    with pytest.raises(ConfigError, match=r"visual\.starnet\.spatial\.layer1\.0: MS-ResNet membrane-shortcut"):
        export_checkpoint(ckpt, tmp_path / "out", fmt="lava")
    assert not (tmp_path / "out").exists()


def test_spiking_front_end_is_refused_naming_it(tmp_path, data, capsys):
    ckpt = _checkpoint(tmp_path, data, "plain", hsfe="spiking")
    with pytest.raises(ConfigError, match=r"visual\.hsfe: the spiking front end has no netx form"):
        export_checkpoint(ckpt, tmp_path / "out", fmt="lava")
    assert not (tmp_path / "out").exists()
    rc, _, err = run_main(capsys, "export", str(ckpt), "--format", "lava", "--out", str(tmp_path / "cli"))
    check_user_error(rc, err, "visual.hsfe", "no netx form")
    assert not (tmp_path / "cli").exists()


def test_simulate_cli_json_and_bad_inputs(tmp_path, data, capsys):
    rng = np.random.default_rng(0)
    net = NetxNet(
        [
            NetxLayer("input", (1, 32, 32), NetxNeuron(4096, 4096, 0)),
            NetxLayer(
                "conv",
                (4, 16, 16),
                NetxNeuron(4096, 1024, 40),
                weight=rng.integers(-30, 60, (4, 1, 3, 3)),
                stride=(2, 2),
                padding=(1, 1),
            ),
        ]
    )
    path = write_netx(tmp_path / "g.net", net)
    clip = (rng.random((40, 32, 32)) < 0.2).astype(np.uint8)
    dat = write_dat(tmp_path / "c.dat", clip)
    assert main(["simulate", str(path), "--data", str(dat), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 40 and out["layers"][0]["spikes"] == int(clip.sum())
    assert out["layers"][1]["synaptic_events"] > 0
    # bad inputs: one line, exit 2
    (tmp_path / "x.net").write_text("not hdf5")
    with h5py.File(tmp_path / "foreign.h5", "w") as h:
        h.create_dataset("weights", data=np.zeros(3))
    (tmp_path / "cut.dat").write_bytes(dat.read_bytes()[:-5])  # truncated mid-frame
    for argv, msg in (
        (["simulate", str(tmp_path / "x.net")], "not an HDF5 file"),
        (["simulate", str(tmp_path / "foreign.h5")], "not a netx network"),
        (["simulate", str(tmp_path / "missing.net")], "no such netx file"),
        (["simulate", str(path), "--data", str(tmp_path / "cut.dat")], "cut.dat"),
        (["simulate", str(path), "--steps", "0"], "--steps"),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:  # a usage error refused by argparse itself
            code = exc.code
        assert code == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err and "Traceback" not in err


def test_unsupported_netx_layer_is_named(tmp_path):
    path = write_netx(tmp_path / "ok.net", NetxNet([NetxLayer("input", (1, 4, 4), NetxNeuron(4096, 4096, 1))]))
    with h5py.File(path, "a") as h:
        g = h["layer"].create_group("1")
        g.create_dataset("type", data=np.array([b"pool"], dtype="S10"))
        g.create_dataset("shape", data=np.array([1, 2, 2]))
    with pytest.raises(ConfigError, match=r"ok\.net: layer 1: layer type 'pool' is not supported by netx"):
        read_netx(path)


@needs_gt
def test_pilotnet_hardware_recording():
    """lava-dl test_pilotnet_lif (recorded on Loihi 2): image as input bias, reset interval 16, 15 steps.
    Its criterion is the dense layers' current u at the last step; here every step of u and of the spikes
    of fc-0..fc-2 is bit-exact, and v everywhere except at spiking steps (the recording's value there is
    not the reset 0 of Lava's CPU model)."""
    net = read_netx(GT / "gts/pilotnet_lif/network.net")
    img = np.load(GT / "gts/pilotnet_lif/image.npy").transpose(2, 1, 0)[None]
    res = simulate(net, np.zeros((15, 1, *net.input_shape), np.int64), bias_in=img, record=True, reset_interval=16)
    spikes_in = np.load(GT / "gts/pilotnet_lif/input.npy")[..., :15]  # X Y Z T
    assert np.array_equal(res.spikes[0][:, 0].transpose(3, 2, 1, 0), spikes_in)
    dense = [i for i, lay in enumerate(net.layers) if lay.type == "dense"]
    for k, i in enumerate(dense[:3]):
        u = res.traces[i]["u"][:, 0].reshape(15, -1).T
        v = res.traces[i]["v"][:, 0].reshape(15, -1).T
        s = res.spikes[i][:, 0].reshape(15, -1).T
        gt_s = np.load(GT / f"gts/pilotnet_lif/fc-{k}.npy")[:, :15]
        gt_v = np.load(GT / f"gts/pilotnet_lif/fc-{k}-v.npy")[:, :15]
        assert np.array_equal(u, np.load(GT / f"gts/pilotnet_lif/fc-{k}-u.npy")[:, :15]), f"fc-{k} u"
        assert np.array_equal(s, gt_s) and gt_s.sum() > 0, f"fc-{k} spikes"
        assert np.array_equal(v[~s], gt_v[~s]), f"fc-{k} v"


def test_plain_cnn_is_a_trainable_chain_and_cnn_is_checked():
    with pytest.raises(ConfigError, match=r"fsve\.cnn must be 'msresnet' or 'plain', got 'resnet'"):
        preset_config("tiny", {**SMALL, "model": "fsve-full", "fsve.cnn": "resnet"})
    cfg = preset_config("tiny", {**SMALL, "model": "fsve-hybrid", "fsve.cnn": "plain"})
    m = build_spklip(cfg, seed=0)
    cnn = m.visual.starnet.spatial
    kinds = [type(mod).__name__ for mod in cnn.stages]
    assert kinds[:4] == ["LIFNode", "Conv2d", "ThresholdDependentBatchNorm2d", "LIFNode"]
    assert len(kinds) == 3 * 2 * sum(cfg.fsve.layers)  # (LIF, conv, BN) twice per block, nothing else
    x = (torch.rand(2, cfg.frames, 32, 32) < 0.1).float()
    emb = m.visual(x)
    assert emb.shape == (2, cfg.embed_dim)
    emb.pow(2).sum().backward()
    assert cnn.stages[1].weight.grad.abs().sum() > 0  # surrogate gradients reach the first spiking conv


def _mutate(h, case: str) -> None:
    g = h["layer/1"]
    if case in ("stride", "dilation", "padding"):
        del g[case]
        g.create_dataset(case, data=np.array([0, 0] if case != "padding" else [-1, -1]))
    elif case == "empty-type":
        del g["type"]
        g.create_dataset("type", data=np.array([], dtype="S10"))
    elif case == "bad-vth":
        del g["neuron/vThMant"]
        g["neuron"].create_dataset("vThMant", data=b"abc")
    elif case == "neuron-dataset":
        del g["neuron"]
        g.create_dataset("neuron", data=np.zeros(3))
    elif case == "weight-shape":
        del g["weight"]
        g.create_dataset("weight", data=np.zeros((4, 1, 3, 3), np.float32))


@pytest.mark.parametrize(
    "case, msg",
    [
        ("stride", "stride [0, 0] must be at least 1"),
        ("dilation", "dilation [0, 0] must be at least 1"),
        ("padding", "padding [-1, -1] must be at least 0"),
        ("empty-type", "type must be a scalar"),
        ("bad-vth", "neuron vThMant must be an integer, found 'abc'"),
        ("neuron-dataset", "'neuron' is not a group"),
        ("weight-shape", "does not map"),
    ],
)
def test_malformed_netx_files_are_one_line(tmp_path, case, msg, capsys):
    net = NetxNet(
        [
            NetxLayer("input", (1, 8, 8), NetxNeuron(4096, 4096, 1)),
            NetxLayer(
                "conv",
                (2, 4, 4),
                NetxNeuron(4096, 1024, 40),
                weight=np.ones((2, 1, 3, 3), np.int64),
                stride=(2, 2),
                padding=(1, 1),
            ),
        ]
    )
    path = write_netx(tmp_path / "m.net", net)
    with h5py.File(path, "a") as h:
        _mutate(h, case)
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "m.net: layer 1" in err and msg in err, err
    assert main(["simulate", str(tmp_path)]) == 2
    assert "is a folder, not a netx file" in capsys.readouterr().err


def test_missing_lava_environment_is_one_line(tmp_path, monkeypatch, capsys):
    import export.simulate as sim

    monkeypatch.setattr(sim, "lava_python", lambda: None)
    net = write_netx(tmp_path / "r.net", _random_net(np.random.default_rng(0)))
    with pytest.raises(ConfigError, match="Lava is not installed: build its environment with 'make lava-env'"):
        sim.run_lava(net, np.zeros((2, 1, 2, 9, 8), np.int64))
