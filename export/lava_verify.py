"""``spklip-energy export CKPT --format lava --verify``: the float model against its fixed-point netx export.

The exported network runs on test clips pipelined as ``simulate`` runs it (:mod:`.simulate`: the host front
end, blocks one after another with per-layer resets) in the bit-exact reference (:mod:`.loihi_engine`); each
neuron layer's spikes are compared with the float spiking CNN's, and the simulator's counts with the hook
counter's on the same fixed-point network as torch modules (:mod:`.loihi_torch`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loihi_engine import simulate
from .netx_format import NetxNet, read_netx
from .simulate import block_windows, host_inputs, pipeline


def hook_counts(net: NetxNet, a_in: np.ndarray, reset_interval: int | None = None) -> dict:
    """SOPs and neuron updates of the same fixed-point network as torch modules, from the hook counter."""
    import torch

    from energy import profile

    from .loihi_torch import NetxTorch

    x = torch.from_numpy(np.ascontiguousarray(a_in))
    t = profile(NetxTorch(net, reset_interval), forward=lambda m: m(x)).totals
    return {"sops": int(t["sops"]), "neuron_updates": int(t["neuron_updates"]), "macs": int(t["macs"])}


def verify_lava(loaded, folder: Path, data, samples: int, progress=None) -> dict:
    """Float torch CNN vs. the fixed-point netx export on test clips, run pipelined as ``simulate`` runs
    it: spike agreement per layer (each layer's window of each block against the float model's steps),
    and the counts of the hook counter vs. the simulator on the same run."""
    from .lava_export import HOST_FILE, NET_FILE, torch_reference_spikes
    from .verify import verify_inputs

    spikes, _ = verify_inputs(loaded, data, samples, progress)
    net = read_netx(folder / NET_FILE)
    rec = {"config": loaded.model.cfg.to_dict(), "host": {"file": HOST_FILE}}
    a = np.concatenate([host_inputs(folder / NET_FILE, rec, s.numpy()) for s in spikes])
    per_block = loaded.model.cfg.fsve.time_steps
    latency = sum(lay.synaptic for lay in net.layers)
    a_in = pipeline(a, per_block, latency)
    res = simulate(net, a_in, reset_interval=per_block)
    counts = hook_counts(net, a_in, per_block)
    ref = torch_reference_spikes(loaded, spikes)
    per_layer = []
    for i, r in enumerate(ref):
        got = block_windows(res.spikes[i], i, a.shape[0], per_block)
        per_layer.append(
            {
                "netx_layer": i,
                "spike_agreement": float((got == r).mean()),
                "torch_rate": float(r.mean()),
                "loihi_rate": float(got.mean()),
            }
        )
    sim = res.totals()
    return {
        "clips": int(spikes.shape[0]),
        "blocks": int(a.shape[0]),
        "steps": int(a_in.shape[0]),
        "per_layer": per_layer,
        "min_spike_agreement": min(p["spike_agreement"] for p in per_layer),
        "counts": {
            "simulator": {"synaptic_events": sim["synaptic_events"], "neuron_updates": sim["neuron_updates"]},
            "hook_counter": counts,
            "agree": counts["sops"] == sim["synaptic_events"] and counts["neuron_updates"] == sim["neuron_updates"],
        },
        "note": "float spikingjelly CNN vs. fixed-point netx export, pipelined with per-layer resets; "
        "differences come from quantisation (8-bit weights, BN folding, threshold ties) and grow "
        "with depth",
    }


__all__ = ["hook_counts", "verify_lava"]
