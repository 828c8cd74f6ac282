"""``export --format nir --verify``: read ``visual_cnn.nir`` back, import it with snnTorch and spikingjelly,
run both on the HSFE features of real clips for the time steps and compare outputs and spikes with the
project's torch CNN (the mapping itself is :mod:`.nir_export`'s)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import nir
import torch
import torch.nn as nn

from fsve.neurons import describe_neuron
from spklip.hsfe import temporal_blocks
from spklip.io import LoadedSPKLIP
from spklip_energy.errors import first_line
from spklip_energy.recording import recording

from .cnn import find_spiking_cnn
from .nir_export import DT, NIR_FILE

#: --verify: an importer passes when at least this fraction of all its spikes equals the project's
SPIKE_AGREEMENT = 0.99
#: --verify: and its per-step outputs are within this relative error (|diff| / max|project|) on this fraction
OUTPUT_TOLERANCE, OUTPUT_AGREEMENT = 1e-4, 0.95


def hsfe_features(loaded: LoadedSPKLIP, spikes: torch.Tensor) -> torch.Tensor:
    """The graph's inputs for clips ``[B, frames, H, W]``: the ANN HSFE's features ``[B*blocks, C, H, W]``
    (the same at every step), or the spiking HSFE's spikes ``[T, B*blocks, C, H, W]`` (one map per step)."""
    visual = loaded.model.visual.eval()
    with torch.no_grad():
        return visual.hsfe(temporal_blocks(spikes[:, : visual.cfg.frames].float(), visual.cfg.hsfe))


def step_input(x: torch.Tensor, t: int) -> torch.Tensor:
    """Step ``t``'s input: ``x[t]`` of per-step inputs ``[T, N, ...]`` (5-D), else ``x`` itself."""
    return x[t] if x.dim() == 5 else x


def project_run(cnn: nn.Module, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, dict, dict]:
    """The project's CNN on ``x [N, C, H, W]`` repeated over ``steps`` (or per-step ``x [T, N, C, H, W]``): outputs ``[T, N, D]``, and per neuron
    (names relative to the CNN) its spikes and pre-reset membrane ``u`` ``[T, N, ...]``."""
    from spikingjelly.activation_based import functional, neuron

    neurons = {n: m for n, m in cnn.named_modules() if isinstance(m, neuron.BaseNode)}
    with recording(neurons, inputs=True) as rec, torch.no_grad():
        cnn.eval()
        functional.reset_net(cnn)
        out = cnn(x if x.dim() == 5 else x.unsqueeze(0).expand(steps, *x.shape))
        functional.reset_net(cnn)
    spikes, inputs = rec.outputs, rec.inputs
    membranes = {}
    for n, x_seq in inputs.items():
        m = cnn.get_submodule(n)
        membranes[n] = describe_neuron(m).run(x_seq)[1]
    return out, spikes, membranes


def _neuron_modules(gm: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """The imported graph's modules of the neuron nodes ``names`` (the importers sanitise dots to ``_``)."""
    mods = dict(gm.named_children())
    return {n: mods[n.replace(".", "_")] for n in names if n.replace(".", "_") in mods}


def run_snntorch(graph, x: torch.Tensor, steps: int, neurons: list[str]) -> tuple[torch.Tensor, dict]:
    """snnTorch's import of ``graph`` on ``x [N, C, H, W]``: outputs ``[T, N, D]`` and spikes per neuron node.

    snnTorch's importer maps ``nir.Flatten(start_dim=0)`` to ``torch.nn.Flatten(0)`` (no batch shift), so each
    sample runs unbatched (``[C, H, W]``), its neurons reset before it (``init_hidden`` state)."""
    from snntorch import utils as snn_utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints warnings
        net = import_from_nir(graph)
    outs = []
    with recording(_neuron_modules(net, neurons), append=True, transform=torch.Tensor.float) as rec, torch.no_grad():
        for i in range(x.shape[-4]):
            snn_utils.reset(net)
            steps_out = []
            for t in range(steps):
                y = net(step_input(x, t)[i])
                steps_out.append((y[0] if isinstance(y, tuple) else y).detach())
            outs.append(torch.stack(steps_out))
    store = rec.outputs
    out = torch.stack(outs, dim=1)  # [T, N, D]
    spikes = {n: torch.stack(v).reshape(x.shape[-4], steps, *v[0].shape).transpose(0, 1) for n, v in store.items()}
    return out, spikes


def run_spikingjelly(graph, x: torch.Tensor, steps: int, neurons: list[str]) -> tuple[torch.Tensor, dict]:
    """spikingjelly's import of ``graph`` (single-step, explicit state passed between steps) on ``x``."""
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    net = import_from_nir(graph, dt=DT, step_mode="s")
    outs = []
    with recording(_neuron_modules(net, neurons), append=True, transform=torch.Tensor.float) as rec, torch.no_grad():
        state = None
        for t in range(steps):
            y, state = net(step_input(x, t), state)
            outs.append(y.detach())
    return torch.stack(outs), {n: torch.stack(v) for n, v in rec.outputs.items()}


def compare_run(
    ref_out: torch.Tensor, ref_spikes: dict, ref_u: dict, vth: dict, out: torch.Tensor, spikes: dict
) -> dict:
    """Output error and spike agreement of an importer's run against the project's."""
    ref = ref_out.double()
    got = out.double().reshape(ref.shape)
    scale = ref.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    rel = (got - ref).abs() / scale
    total = same = 0
    per_node = {}
    first = None
    for n, s_ref in ref_spikes.items():
        if n not in spikes:
            continue
        s = spikes[n].reshape(s_ref.shape).bool()
        eq = s == s_ref.bool()
        total += eq.numel()
        same += int(eq.sum())
        per_node[n] = float(eq.float().mean())
        if first is None and not bool(eq.all()):
            t = int((~eq).flatten(1).any(1).nonzero()[0])  # the first step with a difference: fresh flips only
            margin = (ref_u[n][t] - vth[n]).abs()[~eq[t]]
            first = {
                "node": n,
                "step": t,
                "differing_at_step": int((~eq[t]).sum()),
                "differing_total": int((~eq).sum()),
                "max_abs_v_minus_vth": float(margin.max()),
            }
    return {
        "max_abs_diff": float((got - ref).abs().max()),
        "max_rel_error": float(rel.max()),
        "frac_elements_over_tol": float((rel > OUTPUT_TOLERANCE).double().mean()),
        "spikes_compared": total,
        "spike_agreement": same / total if total else None,
        "spike_agreement_min_node": min(per_node.values()) if per_node else None,
        "neuron_nodes_compared": len(per_node),
        "first_differing_node": first,
    }


def compare_importers(
    nir_path: str | os.PathLike,
    module: nn.Module,
    x: torch.Tensor,
    steps: int,
    widened: dict[str, tuple[int, int]] | None = None,
) -> dict:
    """Run ``module`` (the project's multi-step network) and both importers of the file ``nir_path`` on
    ``x [N, C, H, W]`` (or per-step ``[T, N, C, H, W]``) for ``steps`` steps; figures per importer
    (``{"ok": False, "reason": ...}`` when an importer cannot load or run the graph). ``widened``: neuron nodes
    whose NIR population has ``channels`` channels where the project's has one, placed at ``channel``
    (name -> (channel, channels)); their other channels are compared with silence."""
    from spikingjelly.activation_based import neuron

    ref_out, ref_spikes, ref_u = project_run(module, x, steps)
    for n, (c, k) in (widened or {}).items():
        for store in (ref_spikes, ref_u):
            r = store[n]
            wide = r.new_zeros(*r.shape[:-3], k, *r.shape[-2:])
            wide[..., c : c + 1, :, :] = r
            store[n] = wide
    vth = {n: float(m.v_threshold) for n, m in module.named_modules() if isinstance(m, neuron.BaseNode)}
    graph = nir.read(nir_path)
    neurons = [n for n in ref_spikes if n in graph.nodes]
    total = sum(s.numel() for s in ref_spikes.values())
    res: dict = {
        "nodes_read": len(graph.nodes),
        "edges_read": len(graph.edges),
        "project_spike_rate": (sum(float(s.sum()) for s in ref_spikes.values()) / total) if total else None,
    }
    for name, run in (("snntorch", run_snntorch), ("spikingjelly", run_spikingjelly)):
        try:
            out, sp = run(nir.read(nir_path), x, steps, neurons)  # a fresh graph each: importers may edit it
            fig = compare_run(ref_out, ref_spikes, ref_u, vth, out, sp)
            fig["ok"] = bool(
                (fig["spike_agreement"] is None or fig["spike_agreement"] >= SPIKE_AGREEMENT)
                and 1.0 - fig["frac_elements_over_tol"] >= OUTPUT_AGREEMENT
            )
            if name == "snntorch":
                fig["note"] = (
                    "snnTorch maps nir.Flatten(start_dim=0) to torch.nn.Flatten(0) without the batch "
                    "shift: samples run unbatched, one at a time"
                )
            res[name] = fig
        except Exception as exc:  # an importer's limitation is a finding, not a crash
            res[name] = {"ok": False, "reason": first_line(exc, 300)}
    return res


def verify_nir(
    loaded: LoadedSPKLIP, folder: Path, data: str | os.PathLike = "builtin", samples: int = 4, progress=None
) -> dict:
    """Read ``visual_cnn.nir`` back, import it with snnTorch and spikingjelly, compare with the project's CNN.

    Inputs: the HSFE features of ``samples`` test clips of ``data`` (every temporal block), presented for
    ``fsve.time_steps`` steps. ``ok``: both importers ran, reached :data:`SPIKE_AGREEMENT` identical spikes
    and kept :data:`OUTPUT_AGREEMENT` of the output elements within :data:`OUTPUT_TOLERANCE` relative.
    """
    from .verify import verify_inputs

    _, cnn = find_spiking_cnn(loaded, "NIR")
    spikes, _ = verify_inputs(loaded, data, samples, progress)
    x = hsfe_features(loaded, spikes)
    steps = loaded.model.cfg.fsve.time_steps
    res = {
        "clips": int(spikes.shape[0]),
        "inputs": int(x.shape[-4]),
        "input_shape": list(x.shape[-3:]),
        "time_steps": steps,
        "file": NIR_FILE,
        "spike_agreement_required": SPIKE_AGREEMENT,
        "output_tolerance": OUTPUT_TOLERANCE,
        "output_agreement_required": OUTPUT_AGREEMENT,
        **compare_importers(Path(folder) / NIR_FILE, cnn, x, steps),
    }
    res["ok"] = bool(res["snntorch"]["ok"] and res["spikingjelly"]["ok"])
    if loaded.model.cfg.front_end == "spiking":
        from .nir_front_end import verify_front_end

        res["front_end"] = verify_front_end(loaded, folder, spikes)
        res["ok"] = res["ok"] and res["front_end"]["ok"]
    res["note"] = (
        "project fires at v >= V_th, NIR and snnTorch at v > V_th, spikingjelly's importer at v >= V_th; "
        "spikes can also differ where v is within float rounding of V_th (BN folded, summation order); "
        "first_differing_node: the first neuron node whose spikes differ, its first step with a "
        "difference and the largest |v - V_th| (project's v) among the spikes differing at that step"
    )
    return res


__all__ = [
    "OUTPUT_AGREEMENT",
    "OUTPUT_TOLERANCE",
    "SPIKE_AGREEMENT",
    "compare_importers",
    "compare_run",
    "hsfe_features",
    "project_run",
    "run_snntorch",
    "run_spikingjelly",
    "step_input",
    "verify_nir",
]
