"""The Full-Spiking Visual Encoder: neurons, tdBN, surrogate, SN, E-SDSA, counting, reset, training."""

from __future__ import annotations

import math

import pytest
import torch
from spikingjelly.activation_based import functional, layer

from energy import profile
from fsve import (
    ESDSA,
    Heaviside,
    SpikeMatMul,
    SpikeNorm,
    SpikingCNN,
    make_lif,
    rect_spike,
)
from fsve.firing import FiringRates
from spklip import build_spklip, preset_config

SMALL = {"height": 32, "width": 32, "hsfe.input_pool": 1, "train.batch_size": 8, "train.pretrain_epochs": 1}


def _spikes(b, cfg, p=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, cfg.frames, cfg.height, cfg.width, generator=g) < p).to(torch.uint8)


# --------------------------------------------------------------------------- LIF


def _closed_form_lif(x: torch.Tensor, decay: float, vth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t ; s_t = [u_t >= vth] (hard reset to 0)."""
    u_prev = torch.zeros_like(x[0])
    s_prev = torch.zeros_like(x[0])
    spikes, membranes = [], []
    for t in range(x.shape[0]):
        u = decay * u_prev * (1 - s_prev) + x[t]
        s = (u >= vth).float()
        spikes.append(s)
        membranes.append(u)
        u_prev, s_prev = u, s
    return torch.stack(spikes), torch.stack(membranes)


@pytest.mark.parametrize("decay,vth", [(0.25, 0.5), (0.5, 1.0), (0.1, 0.3)])
def test_lif_matches_the_closed_form_recurrence(decay, vth):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 7, generator=g) * 0.8
    lif = make_lif(v_threshold=vth, decay=decay)
    lif.store_v_seq = True
    out = lif(x)
    want, _ = _closed_form_lif(x, decay, vth)
    assert torch.equal(out, want)
    assert out.sum() > 0 and out.sum() < out.numel()  # the case exercises both firing and silence


def test_lif_holds_no_state_across_reset():
    lif = make_lif()
    x = torch.full((3, 1, 4), 0.45)
    first = lif(x)
    second = lif(x)  # carries membrane: differs
    functional.reset_net(lif)
    third = lif(x)
    assert torch.equal(first, third) and not torch.equal(first, second)


@pytest.mark.parametrize("lens", [0.5, 0.25, 1.0])
def test_surrogate_gradient_is_the_rectangle_of_eq8(lens):
    lif = make_lif(v_threshold=0.5, decay=0.25, lens=lens)  # one step from rest: u = x
    u = torch.linspace(-1.5, 2.5, 401).reshape(1, -1).requires_grad_(True)
    lif(u).sum().backward()
    inside = (u.detach() - 0.5).abs() < lens - 1e-6
    outside = (u.detach() - 0.5).abs() > lens + 1e-6
    assert torch.allclose(u.grad[inside], torch.full_like(u.grad[inside], 1 / (2 * lens)))
    assert (u.grad[outside] == 0).all()
    # the hand-written spike function used by SN has the same window
    v = torch.linspace(-1.5, 1.5, 301).requires_grad_(True)
    rect_spike(v, lens).sum().backward()
    assert torch.allclose(v.grad[v.detach().abs() < lens - 1e-6], torch.tensor(1 / (2 * lens)))
    assert (v.grad[v.detach().abs() > lens + 1e-6] == 0).all()


# --------------------------------------------------------------------------- tdBN


def test_tdbn_normalises_over_time_and_batch_with_threshold_weight():
    cfg = preset_config("tiny").fsve
    cnn = SpikingCNN(cfg, 4, 16)
    bns = [m for m in cnn.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, layer.ThresholdDependentBatchNorm2d) for m in bns)
    weights = {round(float(m.weight[0].detach()), 6) for m in bns}
    assert weights == {
        round(cfg.tdbn_alpha * cfg.v_threshold, 6),
        round(cfg.tdbn_alpha * cfg.v_threshold / math.sqrt(2), 6),
    }
    bn = layer.ThresholdDependentBatchNorm2d(1.0, 0.5, 3)
    x = torch.randn(4, 5, 3, 6, 6) * 3 + 2  # [T, N, C, H, W]
    y = bn(x)
    per_channel = y.transpose(0, 2).reshape(3, -1)  # statistics span T, N, H, W
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.full((3,), 0.5), atol=1e-3)
    plain = preset_config("tiny", {"fsve.norm": "bn"}).fsve
    assert not any(isinstance(m, layer.ThresholdDependentBatchNorm2d) for m in SpikingCNN(plain, 4, 16).modules())


# --------------------------------------------------------------------------- SN and E-SDSA


def test_sn_thresholds_at_alpha_times_mean_abs_per_sample():
    sn = SpikeNorm(alpha=1.0)
    x = torch.tensor([[[1.0, 2.0, 3.0, -6.0]], [[10.0, 0.0, 0.0, 0.0]]]).transpose(0, 1)  # [1, B=2, 4]
    out = sn(x)
    # sample 0: mean|x| = 3 -> spikes where x >= 3 ; sample 1: mean|x| = 2.5 -> only the 10
    assert out[0, 0].tolist() == [0, 0, 1, 0] and out[0, 1].tolist() == [1, 0, 0, 0]
    with torch.no_grad():
        sn.alpha.fill_(0.5)
    assert sn(x)[0, 0].tolist() == [0, 1, 1, 0]
    # a sample's spikes do not depend on the rest of the batch
    assert torch.equal(sn(x[:, :1]), sn(x)[:, :1])
    x.requires_grad_(True)
    sn(x).sum().backward()
    assert sn.alpha.grad is not None


def test_threshold_reparameterisation_gives_the_same_spikes():
    h = Heaviside(v_threshold=0.5, scale=8**-0.5)
    counts = torch.arange(0, 9, dtype=torch.float32)
    scaled = h(counts)
    integer = (counts >= h.integer_threshold()).float()
    assert torch.equal(scaled, integer)
    assert h.integer_threshold() == pytest.approx(0.5 * math.sqrt(8))


def test_esdsa_emits_binary_attention_and_counts_its_spike_products():
    torch.manual_seed(0)
    attn = ESDSA(dim=8, heads=2).eval()
    u = torch.randn(2, 3, 5, 8)  # [T, B, n, D]
    a, v = attn.attention_map(u)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and set(v.unique().tolist()) <= {0.0, 1.0}
    assert a.shape == (2, 3, 2, 5, 5) and v.shape == (2, 3, 2, 5, 4)
    out = attn(u)
    assert out.shape == u.shape

    # hand case: SOPs of a spike-spike product = number of non-zero products
    mm = SpikeMatMul()
    q = torch.tensor([[1.0, 0, 1], [0, 1, 1]])  # 2x3
    k = torch.tensor([[1.0, 1], [0, 1], [1, 0]])  # 3x2
    # non-zero products q_ik * k_kj: (0,0,0) (0,0,1) (0,2,0) (1,1,1) (1,2,0) = 5
    res = profile(mm, (q, k))
    assert float(res.totals["sops"]) == 5 and float(res.totals["macs"]) == 0
    dense = profile(mm, (q + 0.5, k))  # q not binary, k binary: one accumulate per spike of k per row of q
    assert float(dense.totals["sops"]) == 4 * 2
    both_dense = profile(mm, (q + 0.5, k + 0.5))
    assert float(both_dense.totals["macs"]) == 2 * 2 * 3


def test_full_fsve_counts_sops_neurons_and_membrane_traffic():
    cfg = preset_config("tiny", {**SMALL, "model": "fsve-full"})
    m = build_spklip(cfg).eval()
    res = profile(m.visual, _spikes(1, cfg))
    t = res.totals
    assert float(t["sops"]) > 0 and float(t["neuron_updates"]) > 0
    assert float(t["state_reads"]) > 0 and float(t["state_writes"]) == float(t["state_reads"])
    layers = res.per_layer
    esdsa_rows = layers[layers["name"].str.contains("temporal.layers.0.attn.qk")]
    assert len(esdsa_rows) == 1 and float(esdsa_rows["sops"].iloc[0]) > 0  # spike Q times spike K: accumulates
    assert float(esdsa_rows["macs"].iloc[0]) == 0
    q_rows = layers[layers["name"].str.endswith("temporal.layers.0.attn.q")]
    assert float(q_rows["macs"].iloc[0]) == 0  # the Q projection reads spikes


# --------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("model", ["fsve-hybrid", "fsve-full"])
def test_fsve_shapes_reset_between_samples_and_firing_rates(model):
    cfg = preset_config("tiny", {**SMALL, "model": model})
    m = build_spklip(cfg).eval()
    x = _spikes(3, cfg)
    with torch.no_grad(), FiringRates(m.visual) as rates:
        both = m.encode_spikes(x)
        alone = m.encode_spikes(x[1:2])
        again = m.encode_spikes(x[1:2])
    assert both.shape == (3, cfg.embed_dim)
    assert torch.allclose(alone, again) and torch.allclose(both[1:2], alone, atol=1e-5)
    fr = rates.summary()
    assert fr and all(0.0 <= v <= 1.0 for v in fr.values())
    assert any("spatial.layer1" in k for k in fr)


def test_fsve_trains_one_step_with_gradients_everywhere():
    cfg = preset_config("tiny", {**SMALL, "model": "fsve-full"})
    m = build_spklip(cfg).train()
    tokens = torch.zeros(2, cfg.text.context_length, dtype=torch.long)
    tokens[:, :3] = torch.tensor([1, 7, 2])
    out = m(_spikes(2, cfg, p=0.2), tokens)
    (out.spike_features.square().mean() + out.text_features.sum() * 0).backward()
    grads = {n: p.grad for n, p in m.visual.starnet.named_parameters()}
    assert grads["spatial.layer1.0.conv1.weight"] is not None
    assert grads["spatial.layer1.0.conv1.weight"].abs().sum() > 0
    assert grads["temporal.layers.0.attn.q.weight"].abs().sum() > 0


def test_fsve_config_errors():
    from spklip_energy.errors import ConfigError

    with pytest.raises(ConfigError, match="model must be one of"):
        preset_config("tiny", {"model": "snn"})
    for bad in (1.5, 0.0):
        with pytest.raises(ConfigError, match="fsve.decay"):
            preset_config("tiny", {"fsve.decay": bad})
    with pytest.raises(ConfigError, match="too small for the spiking MS-ResNet"):
        preset_config("tiny", {"model": "fsve-full", "height": 8, "width": 8, "hsfe.input_pool": 1})


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_train_eval_report_compare_fsve(tmp_path, data, capsys):
    import json

    from spklip_energy.checkpoint import load_checkpoint
    from spklip_energy.cli import main

    sets = sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])
    assert (
        main(
            [
                "train",
                "--preset",
                "tiny",
                *sets,
                "--data",
                str(data),
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "ann"),
                "--json",
            ]
        )
        == 0
    )
    ann = json.loads(capsys.readouterr().out)["checkpoint"]
    cks = {}
    for model in ("fsve-hybrid", "fsve-full"):
        run = tmp_path / model
        assert (
            main(
                [
                    "train",
                    "--model",
                    model,
                    "--preset",
                    "tiny",
                    *sets,
                    "--data",
                    str(data),
                    "--epochs",
                    "1",
                    "--out",
                    str(run),
                    "--init",
                    ann,
                    "--json",
                ]
            )
            == 0
        )
        res = json.loads(capsys.readouterr().out)
        init = load_checkpoint(res["checkpoint"]).card["init"]
        assert init["kind"] == "spklip" and {"text", "visual.hsfe", "logit_scale"} <= set(init["parts"])
        assert not any(p.startswith("visual.starnet.spatial") for p in init["parts"])  # the CNNs differ
        assert ("visual.starnet.temporal" in init["parts"]) == (model == "fsve-hybrid")  # same ANN Transformer
        rec = res["history"][0]
        assert rec["firing_rates"] and rec["lif_kernel"].startswith("spikingjelly LIF")
        assert any(k.startswith("starnet.spatial.") for k in rec["firing_rates"])
        cks[model] = res["checkpoint"]
        assert main(["eval", cks[model], "--data", str(data), "--json"]) == 0
        ev = json.loads(capsys.readouterr().out)
        hits = ev["per_clip"]["top1"]  # the figure is the share of the clips' recorded hits
        assert len(hits) == ev["clips"] == len(ev["per_clip"]["ids"]) > 0
        assert ev["top1"] == pytest.approx(hits.count("1") / ev["clips"])
    out = tmp_path / "rep"
    assert main(["report", cks["fsve-full"], "--data", str(data), "--samples", "2", "--out", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["checkpoint"]["kind"] == "fsve-full" and rep["checkpoint"]["spiking"] is True
    assert rep["counts"]["neuron_updates"] > 0 and rep["not_counted"] == []
    assert (
        main(
            [
                "compare",
                cks["fsve-hybrid"],
                cks["fsve-full"],
                "--data",
                str(data),
                "--samples",
                "2",
                "--out",
                str(tmp_path / "cmp"),
                "--json",
            ]
        )
        == 0
    )
    cmp_ = json.loads(capsys.readouterr().out)
    assert len(cmp_["rows"]) == 2
    assert (
        main(
            [
                "adapt",
                cks["fsve-full"],
                "--data",
                str(data),
                "--shots",
                "1",
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "ad"),
                "--json",
            ]
        )
        == 0
    )
    ad = json.loads(capsys.readouterr().out)
    assert all(m.startswith("visual.starnet.temporal.layers.") for m in ad["trainable_modules"])
