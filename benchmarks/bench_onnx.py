"""onnxruntime vs torch eager: the ANN visual encoder of the tiny preset, batch 8, CPU.

Builds ``build_spklip(preset_config("tiny"))`` fresh (untrained weights; speed does
not depend on them), exports ``model.visual`` to ONNX with ``export``'s
exporter, then times torch eager (``no_grad``, eval) and onnxruntime
(CPUExecutionProvider, graph optimisations on) interleaved, same threads for
both, and prints the medians and their ratio (eager / ORT; > 1 means ORT is faster).

    .venv/bin/python benchmarks/bench_onnx.py [--repeats 20] [--threads 1] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from export.onnx_export import export_module
from spklip import build_spklip, preset_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset_config("tiny")
    model = build_spklip(cfg, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, cfg.frames, cfg.height, cfg.width, generator=g) < 0.05).float()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "visual.onnx"
        with torch.no_grad():
            export_module(model.visual, (x[:2],), path, "spikes", 17)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"spikes": x.numpy()}
    with torch.no_grad():
        ref = model.visual(x).numpy()
        got = sess.run(None, feed)[0]
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        for _ in range(2):  # warm-up
            model.visual(x)
            sess.run(None, feed)
        eager, onnx_rt = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.visual(x)
            t1 = time.perf_counter()
            sess.run(None, feed)
            t2 = time.perf_counter()
            eager.append(t1 - t0)
            onnx_rt.append(t2 - t1)
    me, mo = statistics.median(eager), statistics.median(onnx_rt)
    print(
        f"tiny ANN visual encoder, input {list(x.shape)}, {args.threads} thread(s), median of {args.repeats}, "
        f"interleaved; torch {torch.__version__}, onnxruntime {ort.__version__}"
    )
    print(f"torch eager : {1e3 * me:8.2f} ms/batch")
    print(f"onnxruntime : {1e3 * mo:8.2f} ms/batch")
    print(f"ratio eager/ORT: {me / mo:.2f}x ({'ORT faster' if mo <= me else 'eager faster'}); max rel error {err:.1e}")


if __name__ == "__main__":
    main()
