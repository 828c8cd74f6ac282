"""Time of the fixed-point Loihi reference on the exported FSVE CNN for one 250-frame clip (issue 7's target: < 10 s).

Builds the tiny preset's fsve-full with the chain CNN (``fsve.cnn=plain``; a trained
checkpoint via ``--checkpoint``), sets realistic BN statistics from a pass over
training clips when untrained, exports it with ``export --format lava`` and runs
``simulate`` on the first built-in test clip. Prints the host (HSFE + stem, onnxruntime)
and simulation seconds, and the simulated synaptic events per second.

    python benchmarks/bench_simulate.py [--checkpoint CKPT] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from export import export_checkpoint
from export.simulate import run_simulation
from spikedata import builtin_dataset
from spikedata.manifest import load_manifest
from spklip import build_spklip, preset_config
from spklip.data import clips_for
from spklip.io import save_spklip
from spklip.tokenizer import SpikeTextTokenizer


def untrained_checkpoint(root: Path, out: Path) -> Path:
    cfg = preset_config("tiny", {"model": "fsve-full", "fsve.cnn": "plain"})
    m = build_spklip(cfg, seed=0)
    man = load_manifest(root)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None  # cumulative statistics over the calibration pass
    ds = clips_for(cfg, man, "train")
    with torch.no_grad():
        m.train()
        m.visual(torch.stack([ds[i]["spikes"] for i in range(8)]).float())
    m.eval()
    tok = SpikeTextTokenizer.train(
        [c.caption for c in man.clips] + list(man.class_prompts.values()), cfg.text.vocab_size
    )
    return save_spklip(out / "fsve-plain.pt", m, tok, {"class_prompts": list(man.class_prompts.values())})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = builtin_dataset()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ckpt = args.checkpoint or untrained_checkpoint(root, d)
        rec = export_checkpoint(ckpt, d / "lava", "lava")
        net = d / "lava" / rec["lava"]["file"]
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            summary, _ = run_simulation(net, str(root))
            wall = time.perf_counter() - t0
            if best is None or wall < best[0]:
                best = (wall, summary)
        wall, s = best
        t = s["totals"]
        print(
            f"network: {len(rec['lava']['layers'])} netx layers, input {rec['lava']['layers'][0]['shape']}; "
            f"{s['input']}"
        )
        print(f"spikes {t['spikes']}, synaptic events {t['synaptic_events']}, neuron updates {t['neuron_updates']}")
        print(
            f"seconds (best of {args.repeat}): host {s['seconds']['host']}, simulation {s['seconds']['simulation']}, "
            f"whole simulate {wall:.3f}  (target < 10 s: {'met' if wall < 10 else 'NOT met'})"
        )
        print(
            f"{t['synaptic_events'] / max(s['seconds']['simulation'], 1e-9):.3g} synaptic events/s, "
            f"{t['neuron_updates'] / max(s['seconds']['simulation'], 1e-9):.3g} neuron updates/s"
        )


if __name__ == "__main__":
    main()
