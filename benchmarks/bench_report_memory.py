"""Peak memory of ``report`` against the number of clips profiled, side by side in one run.

``report`` streams: clips are read and profiled a batch at a time, and each layer's counts are folded
into one running record per layer as the forward passes go (``energy/profiler.py``), so its memory should
not grow with ``--samples``. This script generates a spike-digits dataset with enough test clips
(the built-in generator, default geometry), writes an (untrained) tiny SPKLIP checkpoint, runs
``spklip-energy report`` on it in a fresh process for each clip count (``--clips``, default 100 and
1000), and prints each run's peak resident memory (``ru_maxrss``), the
growth per 100 clips and the ratio of the largest to the smallest.

    python benchmarks/bench_report_memory.py [--clips 100,1000] [--preset tiny] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from energy.record import EnergyReport

CHILD = """
import resource, sys
from spklip_energy.cli import main
rc = main(sys.argv[1:])
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(rc)
"""


def _dataset(root: Path, clips: int) -> Path:
    from spikedata.digits import MOTIONS, DigitsConfig, generate_digits

    per_class = -(-clips // len(MOTIONS))
    return generate_digits(root, DigitsConfig(clips_per_class=per_class + 2, split_clips=(1, 1, per_class)))


def _checkpoint(path: Path, preset: str, data: Path) -> Path:
    import torch

    from spklip.config import preset_config
    from spklip.data import load_splits
    from spklip.io import save_spklip
    from spklip.model import build_spklip
    from spklip.tokenizer import SpikeTextTokenizer

    cfg = preset_config(preset, {"model": "spklip"})
    torch.manual_seed(0)
    model = build_spklip(cfg)
    _, splits = load_splits(cfg, data, ("train",))
    tok = SpikeTextTokenizer.train(splits["train"].captions + splits["train"].class_prompts, cfg.text.vocab_size)
    save_spklip(path, model, tok, {"note": "untrained, for the memory benchmark"})
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="100,1000")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(c) for c in args.clips.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _dataset(Path(tmp) / "digits", max(counts))
        ck = _checkpoint(Path(tmp) / "spklip.pt", args.preset, data)
        for n in counts:
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    "report",
                    str(ck),
                    "--data",
                    str(data),
                    "--samples",
                    str(n),
                    "--out",
                    str(Path(tmp) / f"rep{n}"),
                    "--json",
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                raise SystemExit(f"report on {n} clips failed:\n{r.stderr[-2000:]}")
            peak = int(next(line.split()[1] for line in r.stderr.splitlines() if line.startswith("PEAK_KIB")))
            summary = EnergyReport.from_json(json.loads(r.stdout), f"report --json on {n} clips")
            rows.append({"clips": summary.data.samples, "peak_mib": peak / 1024, "seconds": time.perf_counter() - t0})
    first, last = rows[0], rows[-1]
    growth = (last["peak_mib"] - first["peak_mib"]) / max(last["clips"] - first["clips"], 1) * 100
    result = {
        "preset": args.preset,
        "runs": rows,
        "growth_mib_per_100_clips": growth,
        "ratio_peak": last["peak_mib"] / first["peak_mib"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for row in rows:
        print(
            f"report, {args.preset} SPKLIP, {row['clips']:>5} clips: peak RSS {row['peak_mib']:.0f} MiB "
            f"({row['seconds']:.0f} s)"
        )
    print(
        f"peak at {last['clips']} / at {first['clips']} clips: {result['ratio_peak']:.3f}x "
        f"({growth:+.2f} MiB per 100 clips)"
    )


if __name__ == "__main__":
    main()
