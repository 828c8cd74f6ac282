"""Cost of a counted forward against a plain one, side by side in one run.

Model: spikingjelly's MS-ResNet-18 at [T=4, B=2, 3, 64, 64] (the case of the
peer figure in the issue), plus this project's zoo models. For each: the median
time of a plain forward, of a forward under ``energy.profile``
(all counts: MACs, SOPs, neuron updates, memory, rates), of ``profile`` plus
every published energy model (``--models all``: the presets, Lemaire in both
memory modes, SpikeSim, the data-movement bound, and the break-even rates of
every spiking layer), of a forward under spikingjelly's ``SynOpCounter`` (SOPs
only) and of spikingjelly's own ``estimate_lemaire_energy`` (one model).
Targets: profile / plain <= 1.25; profile + every estimator / plain <= 1.3 (the break-even
analysis on top of it, which ``report`` also runs, is printed beside it).

    python benchmarks/bench_profile.py [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from energy import Profiler, profile
from energy.models import PriceContext, estimate_models, resolve_models, summarise
from spklip_energy.zoo import build_model, default_card, prepare_input, reset_states

TARGET = 1.25
TARGET_ALL = 1.3
ALL_MODELS = resolve_models("all")
#: The target is set on the issue's peer case; the two-layer toy models take well under
#: a millisecond, so a fixed hook cost per layer dominates their ratio (printed, not judged).
TARGET_MODELS = ("sj ms_resnet18", "sj-ms-resnet18")


def _interleaved(fns: list, reset, repeat: int) -> list[float]:
    """Median time of each function, measured in alternation so that drift hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            reset()
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _sj_synop(model, x):
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

    counter = SynOpCounter()
    with DispatchCounterMode([counter]):
        model(x)
    return counter.get_total()


def _sj_lemaire(model, x):
    import warnings

    from spikingjelly.activation_based.op_counter.analytical_energy import (
        LemaireEnergyConfig,
        estimate_lemaire_energy,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its notes on the layers outside the Lemaire model
        return estimate_lemaire_energy(model, x, config=LemaireEnergyConfig(strict=False)).total_pj


def _every_estimator(model, x):
    """profile() and the energy under every model (what the issue's target measures)."""
    r = profile(model, x)
    spiking = bool(r.layers.is_("neuron").any())
    return [summarise(m, r.layers, PriceContext(r.samples, spiking)) for m in ALL_MODELS]


def _all_models(model, x):
    """profile() and estimate_models as report runs it: every model, plus the break-even analysis."""
    r = profile(model, x)
    return estimate_models(r, r.samples, ALL_MODELS)


def bench(name: str, model: torch.nn.Module, x: torch.Tensor, repeat: int) -> dict:
    model.eval()

    def reset():
        reset_states(model)

    prof = Profiler(model)
    if bool(((x == 0) | (x == 1)).all()):
        prof.mark_spikes(x)

    def counted_forward():
        with prof:
            model(x)

    with torch.no_grad():
        reset()
        model(x)  # warm-up
        plain, counted, end_to_end, estimators, every, peer, peer_lemaire = _interleaved(
            [
                lambda: model(x),
                counted_forward,
                lambda: profile(model, x),
                lambda: _every_estimator(model, x),
                lambda: _all_models(model, x),
                lambda: _sj_synop(model, x),
                lambda: _sj_lemaire(model, x),
            ],
            reset,
            repeat,
        )
    return {
        "model": name,
        "input": list(x.shape),
        "plain_ms": round(plain * 1e3, 2),
        "profile_ms": round(counted * 1e3, 2),
        "profile_end_to_end_ms": round(end_to_end * 1e3, 2),
        "spikingjelly_synop_ms": round(peer * 1e3, 2),
        "profile_ratio": round(counted / plain, 3),
        "end_to_end_ratio": round(end_to_end / plain, 3),
        "spikingjelly_ratio": round(peer / plain, 3),
        "estimators_ms": round(estimators * 1e3, 2),
        "estimators_ratio": round(estimators / plain, 3),
        "every_model_ms": round(every * 1e3, 2),
        "every_model_ratio": round(every / plain, 3),
        "spikingjelly_lemaire_ms": round(peer_lemaire * 1e3, 2),
        "spikingjelly_lemaire_ratio": round(peer_lemaire / plain, 3),
        "meets_target": counted / plain <= TARGET,
        "meets_target_all": estimators / plain <= TARGET_ALL,
        "target_applies": name in TARGET_MODELS,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    from spikingjelly.activation_based.model import ms_resnet

    net = ms_resnet.ms_resnet18(T=4, in_channels=3, num_classes=10)
    # the issue's case, and a batch of 8: the models' fixed cost per layer does not grow with the batch
    cases = [
        ("sj ms_resnet18", net, torch.rand(4, 2, 3, 64, 64)),
        ("sj ms_resnet18 B8", net, torch.rand(4, 8, 3, 64, 64)),
    ]
    clips = (torch.rand(2, 40, 64, 64) < 0.05).to(torch.uint8)
    for kind in ("test-ann-cnn", "test-sj-snn", "sj-ms-resnet18"):
        card = default_card(kind)
        cases.append((kind, build_model(card), prepare_input(card, clips)))
    rows = [bench(name, m, x, args.repeat) for name, m, x in cases]
    if args.json:
        print(json.dumps(rows))
        return
    print(
        f"{'model':<18} {'input':<20} {'plain':>8} {'counted':>8} {'ratio':>6} {'+summary':>9} {'ratio':>6}"
        f" {'+models':>9} {'ratio':>6} {'+b-even':>9} {'ratio':>6} {'sj SynOp':>9} {'ratio':>6}"
        f" {'sj Lemaire':>10} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['model']:<18} {str(r['input']):<20} {r['plain_ms']:>6.1f}ms {r['profile_ms']:>6.1f}ms "
            f"{r['profile_ratio']:>6.2f} {r['profile_end_to_end_ms']:>7.1f}ms {r['end_to_end_ratio']:>6.2f}"
            f" {r['estimators_ms']:>7.1f}ms {r['estimators_ratio']:>6.2f}"
            f" {r['every_model_ms']:>7.1f}ms {r['every_model_ratio']:>6.2f}"
            f" {r['spikingjelly_synop_ms']:>7.1f}ms {r['spikingjelly_ratio']:>6.2f}"
            f" {r['spikingjelly_lemaire_ms']:>8.1f}ms {r['spikingjelly_lemaire_ratio']:>6.2f}"
        )
    print(
        "counted = forward under the counting hooks; +summary = profile() end to end (planning the hooks, "
        f"forward, per-layer records); +models = profile() and the energy under all {len(ALL_MODELS)} models; +b-even = "
        "what report runs: that and the break-even analysis of every spiking layer under every model; sj Lemaire = "
        "spikingjelly's estimate_lemaire_energy (its own forward, one model)"
    )
    judged = [r for r in rows if r["target_applies"]]
    for key, target, what in (
        ("meets_target", TARGET, "counted/plain"),
        ("meets_target_all", TARGET_ALL, "(profile + every estimator)/plain"),
    ):
        missed = [r["model"] for r in judged if not r[key]]
        print(
            f"target {what} <= {target} on MS-ResNet-18: " + ("met" if not missed else "MISSED: " + ", ".join(missed))
        )


if __name__ == "__main__":
    main()
