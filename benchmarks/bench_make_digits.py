"""Time generating the default built-in spike-digits dataset (target: under 60 s here).

Side by side in one run: the default dataset (8 classes x 32 clips, 250 frames,
64x64) generated with clip batching (16 clips per vectorised camera step) and
with one clip at a time, so the effect of batching is printed as a ratio.

    python benchmarks/bench_make_digits.py [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from spikedata.digits import DigitsConfig, generate_digits


def _time(batch: int, cfg: DigitsConfig) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        generate_digits(Path(d) / "digits", cfg, batch_clips=batch)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = DigitsConfig()
    batched = _time(16, cfg)
    single = _time(1, cfg)
    res = {
        "clips": cfg.clips_per_class * 8,
        "frames": cfg.frames,
        "size": f"{cfg.height}x{cfg.width}",
        "batched_s": round(batched, 2),
        "one_clip_at_a_time_s": round(single, 2),
        "batching_speedup": round(single / batched, 2),
        "target_s": 60.0,
        "meets_target": batched < 60.0,
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"default dataset ({res['clips']} clips, {cfg.frames} frames, {res['size']}): "
            f"{batched:.2f} s batched vs {single:.2f} s one clip at a time "
            f"(x{res['batching_speedup']}); target < 60 s: {'met' if res['meets_target'] else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
