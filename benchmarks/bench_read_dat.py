"""Time ``read_dat`` against a SpikeCV-style per-frame comparator reader.

Writes a random clip to a temporary folder, reads it with both, checks that
they agree bit for bit, and prints the median times, their ratio and whether
the targets (``read_dat`` under 10 ms, at least 50x faster) are met.

Example
-------
    python benchmarks/bench_read_dat.py --frames 250 --height 240 --width 320 --repeat 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikedata.dat import read_dat, write_dat
from spikedata.dat import read_dat_loop as spikecv_read

TARGET_MS = 10.0
TARGET_RATIO = 50.0


def median_ms(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 whether or not the targets are met."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--repeat", type=int, default=7, help="timed calls per reader (median)")
    ap.add_argument("--rate", type=float, default=0.2, help="firing probability of the clip")
    ap.add_argument("--flipud", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args(argv)
    if (args.height * args.width) % 8:
        ap.error("height * width must be a multiple of 8 for the SpikeCV-style reader")
    if args.repeat < 1 or args.frames < 1:
        ap.error("--repeat and --frames must be positive")

    rng = np.random.default_rng(args.seed)
    spikes = (rng.random((args.frames, args.height, args.width)) < args.rate).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_dat(Path(tmp) / "bench.dat", spikes, flipud=args.flipud)
        ours = read_dat(path, args.height, args.width, flipud=args.flipud)  # warm-up
        ref = spikecv_read(path, args.height, args.width, flipud=args.flipud)
        agree = bool(np.array_equal(ours, ref) and np.array_equal(ours, spikes))
        ours_ms = median_ms(lambda: read_dat(path, args.height, args.width, flipud=args.flipud), args.repeat)
        ref_ms = median_ms(lambda: spikecv_read(path, args.height, args.width, flipud=args.flipud), args.repeat)
        n_bytes = path.stat().st_size

    ratio = ref_ms / ours_ms if ours_ms > 0 else float("inf")
    result = {
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "bytes": n_bytes,
        "repeat": args.repeat,
        "read_dat_ms": round(ours_ms, 3),
        "spikecv_loop_ms": round(ref_ms, 3),
        "ratio": round(ratio, 1),
        "agree": agree,
        "read_dat_under_10ms": ours_ms < TARGET_MS,
        "ratio_at_least_50": ratio >= TARGET_RATIO,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"clip: {args.frames} x {args.height} x {args.width} ({n_bytes} bytes), median of {args.repeat}")
        print(f"read_dat            : {ours_ms:9.3f} ms")
        print(f"SpikeCV-style loop  : {ref_ms:9.3f} ms")
        print(f"ratio               : {ratio:9.1f} x")
        print(f"agree (bit-exact)   : {agree}")
        print(f"read_dat < {TARGET_MS:g} ms    : {result['read_dat_under_10ms']}")
        print(f"ratio >= {TARGET_RATIO:g}         : {result['ratio_at_least_50']}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
