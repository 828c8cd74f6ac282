"""One forward of the `reference` SPKLIP preset at batch 1 on the CPU, and its MACs per module.

Runs the reference visual encoder (250 frames, 240x320) once under the energy
counter and prints, per module group, the counted MACs next to a hand estimate
from the layer sizes (convolutions: output pixels x C_in x C_out x k^2;
BatchNorm one per element; attention and Transformer layers by their matrix
products). The hand estimate is written out here, independently of the counting
rules.

    python benchmarks/reference_macs.py [--preset reference] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from energy import profile
from spklip import build_spklip, preset_config


def conv(hw: int, cin: int, cout: int, k: int) -> int:
    return hw * cin * cout * k * k


def hand_estimate(cfg) -> dict[str, int]:
    """MACs per clip by module group, from the architecture's sizes alone."""
    h, w = cfg.height // cfg.hsfe.input_pool, cfg.width // cfg.hsfe.input_pool
    hw, n = h * w, cfg.hsfe.n_blocks
    hs = cfg.hsfe
    est: dict[str, int] = {}
    branches = 0
    for k in range(hs.branches):
        lo, hi = hs.branch_frames(k)
        frames = hi - lo
        mask = frames * hw if hs.temporal_mask else 0
        branches += mask + conv(hw, frames, hs.branch_width, 3) + conv(hw, hs.branch_width, 1, 3)
    est["hsfe.branches"] = n * branches
    est["hsfe.sa"] = (
        n * (conv(hw, hs.branches, hs.sa_hidden, 3) + conv(hw, hs.sa_hidden, hs.branches, 3)) if hs.sa else 0
    )
    est["hsfe.head"] = n * conv(hw, hs.branches, hs.features, 3)
    est["hsfe.trunk"] = n * hs.trunk_blocks * 3 * conv(hw, hs.features, hs.features, 3)
    s = cfg.starnet
    wd = s.width
    # stem: three 3x3 conv + BN (ReLU free), then 2x2 average pooling (one add per input element)
    size = (h, w)
    stem = 0
    for cin, cout, stride in (
        (hs.features, wd // 2, s.stem_strides[0]),
        (wd // 2, wd // 2, s.stem_strides[1]),
        (wd // 2, wd, s.stem_strides[2]),
    ):
        size = ((size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1)
        px = size[0] * size[1]
        stem += conv(px, cin, cout, 3) + px * cout
    stem += size[0] * size[1] * wd  # average pooling reads each element once
    size = (size[0] // 2, size[1] // 2)
    est["starnet.stem"] = n * stem
    inplanes = wd
    for i, (blocks, stride) in enumerate(zip(s.layers, (1, 2, 2, 2), strict=True)):
        planes, total = wd * 2**i, 0
        for b in range(blocks):
            st = stride if b == 0 else 1
            px_in = size[0] * size[1]
            out = (size[0] // st, size[1] // st)
            px_out = out[0] * out[1]
            total += conv(px_in, inplanes, planes, 1) + px_in * planes  # conv1 + bn1
            total += conv(px_in, planes, planes, 3) + px_in * planes  # conv2 + bn2
            if st > 1:
                total += px_in * planes  # average pooling
            total += conv(px_out, planes, planes * 4, 1) + px_out * planes * 4  # conv3 + bn3
            if st > 1 or inplanes != planes * 4:
                if st > 1:
                    total += px_in * inplanes
                total += conv(px_out, inplanes, planes * 4, 1) + px_out * planes * 4
            inplanes, size = planes * 4, out
        est[f"starnet.layer{i + 1}"] = n * total
    tokens, c, e = size[0] * size[1], inplanes, cfg.embed_dim
    d = c // s.heads
    # the mean token is the only query: Q projects 1 token, K and V all tokens+1
    attn = c * c * (1 + 2 * (tokens + 1)) + 2 * s.heads * (tokens + 1) * d + 3 * s.heads * (tokens + 1) + c * c
    attn += c * tokens + c * (tokens + 1) + c * e  # mean token, positions, output projection
    est["starnet.attnpool"] = n * attn
    heads, dh = s.temporal_heads, e // s.temporal_heads
    layer = 3 * n * e * e + heads * n * n * dh * 2 + 3 * heads * n * n + n * e * e  # attention
    layer += 2 * n * e * s.temporal_ffn + 2 * 3 * n * e  # FFN + two LayerNorms
    est["starnet.temporal"] = s.temporal_layers * layer + (n * e if s.temporal_position else 0)
    return est


def group_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "hsfe":
        key = parts[1]
        return {
            "branches": "hsfe.branches",
            "sa": "hsfe.sa",
            "head": "hsfe.head",
            "trunk": "hsfe.trunk",
            "pool": "hsfe.pool",
        }.get(key, "hsfe." + key)
    if parts[0] == "starnet":
        if parts[1] == "spatial":
            return "starnet." + parts[2]
        return "starnet.temporal"
    return name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="reference")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = preset_config(args.preset)
    model = build_spklip(cfg).eval()
    spikes = (torch.rand(1, cfg.frames, cfg.height, cfg.width) < 0.05).to(torch.uint8)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.encode_spikes(spikes)
    plain_s = time.perf_counter() - t0
    result = profile(model.visual, forward=lambda m: m(spikes), samples=1)
    counted: dict[str, int] = {}
    for _, row in result.per_layer[result.per_layer["counted"]].iterrows():
        g = group_of(row["name"])
        # MACs and SOPs together: at initialisation the temporal masks are 1, so the first
        # convolution of each MTF branch still sees binary spikes and its work is SOPs
        counted[g] = counted.get(g, 0) + int(row["macs"]) + int(row["sops"])
    hand = hand_estimate(cfg)
    rows = []
    for g in sorted(set(hand) | set(counted)):
        c, h = counted.get(g, 0), hand.get(g, 0)
        rows.append({"module": g, "counted_macs": c, "hand_estimate": h, "ratio": (c / h) if h else None})
    report = {
        "preset": args.preset,
        "output_shape": list(out.shape),
        "forward_s": round(plain_s, 2),
        "total_counted": sum(counted.values()),
        "total_hand": sum(hand.values()),
        "rows": rows,
        "not_counted": result.not_counted,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.preset}: output {tuple(out.shape)}, one forward at batch 1 took {plain_s:.1f} s on this CPU")
    print(
        "counted = MACs + SOPs from the hooks; hand = dense MACs from the layer sizes. The MTF branches "
        "see binary spikes (SOPs, far fewer than dense MACs) until their temporal masks move away from 1; "
        "pooling windows that floor away a border row are exact in the count, not in the hand estimate."
    )
    print(f"{'module':<20} {'counted ops':>16} {'hand estimate':>16} {'ratio':>7}")
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        print(f"{r['module']:<20} {r['counted_macs']:>16,} {r['hand_estimate']:>16,} {ratio:>7}")
    print(
        f"{'total':<20} {report['total_counted']:>16,} {report['total_hand']:>16,} "
        f"{report['total_counted'] / report['total_hand']:>7.3f}"
    )


if __name__ == "__main__":
    main()
