"""Run a netx file in Intel's Lava (lava-nc 0.10.0 + lava-dl 0.6.0, fixed-point CPU simulator) and save its spikes.

Standalone: it runs in the separate Lava environment (``make lava-env`` builds ``.lava-venv``
with ``tools/setup_lava_env.sh``), never inside the project's ``.venv``; ``spklip-energy simulate
--engine lava|both`` calls it as a subprocess::

    .lava-venv/bin/python export/lava_runner.py NET.net INPUT.npy OUT.npz [--record]

``INPUT.npy`` holds integer input in this project's layout, ``[T, C, H, W]`` (one sample) or
``[T, N, C, H, W]`` (N samples, each run from zero state in a freshly built network). Lava's
layout is (X, Y, Z) = (W, H, C) with time last, so each sample is handed to Lava as
``x[:, n].transpose(3, 2, 1, 0)``, shape ``(W, H, C, T)`` = ``(*net.inp.shape, T)``, through an
``io.source.RingBuffer(data=x)`` connected to the input layer's neuron ``a_in``
(``net.in_layer.neuron.a_in``; ``net.inp`` is a dead end in lava-dl 0.6.0). That source sends ``x[..., (ts - 1) % T]``
at Lava time step ``ts = 1..T``; the input LIF adds it to its ``a_in`` (scaled ``<< 6``) at
the same ``ts``. Sinks store what arrives at ``ts`` at index ``ts - 1``.

``OUT.npz`` holds, in the project's layout so that it compares directly with
``export.loihi_engine.simulate(net, a_in)`` (``a_in`` ``[T, N, C, H, W]``):

- ``out``: spikes of the output layer ``[T, N, C, H, W]`` (dense layers: ``[T, N, n, 1, 1]``), uint8;
  index ``t`` is Lava's time step ``ts = t + 1``;
- ``spikes_<i>`` for every neuron layer ``i`` (numbered as in the netx file, flatten layers
  included in the numbering but not saved, as the project's ``SimResult.spikes`` does);
- with ``--record``: ``u_<i>`` and ``v_<i>`` (int64, Lava's integer state after each step), read
  with ``.get()`` after each ``RunSteps(1)`` (slow; for small networks).

Both packages declare ``Requires-Python <3.11``; on Python 3.11 the env is built with
``pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0`` plus
``numpy<2 scipy<2 networkx<=2.8.7 asteval<0.10 h5py<4 opencv-python-headless<4.11 matplotlib``,
torch's pure-Python deps and ``pip install --no-deps torch==2.13.0`` (CPU), and two patches:

1. ``lava/magma/compiler/var_model.py``: ``x: ByteEncoder = ByteEncoder()`` (8 fields) becomes
   ``x: ByteEncoder = field(default_factory=ByteEncoder)`` (3.11 rejects mutable dataclass defaults);
2. ``lava/lib/dl/slayer/__init__.py``: ``from . import object_detection as obd`` is wrapped in
   ``try/except ImportError`` (it needs torchvision, which netx does not use).

Checked: Lava's own tinynet test passes bit-exactly, and spikes, u and v of every layer match
``loihi_engine.simulate`` bit-exactly at the same time index (``tests/test_lava_crosscheck.py``).
"""

from __future__ import annotations

import argparse
import sys
import time

import h5py
import numpy as np


def _layer_types(path: str) -> list[str]:
    with h5py.File(path, "r") as h:
        out = []
        for i in range(len(h["layer"])):
            t = h["layer"][str(i)]["type"][()]
            t = t[0] if isinstance(t, np.ndarray) else t
            out.append(t.decode() if isinstance(t, bytes) else str(t))
    return out


def _to_ours(y: np.ndarray) -> np.ndarray:
    """Lava ``(*xyz, T)`` -> project ``[T, C, H, W]`` (dense ``(n, T)`` -> ``[T, n, 1, 1]``)."""
    if y.ndim == 2:
        return y.T[:, :, None, None]
    return y.transpose(3, 2, 1, 0)


def run_sample(
    net_path: str, x_chw: np.ndarray, record: bool, reset_interval: int | None = None
) -> dict[str, np.ndarray]:
    """Run one sample ``[T, C, H, W]``; returns arrays ``[T, ...]`` in the project's layout."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    steps = x_chw.shape[0]
    net = netx.hdf5.Network(net_config=net_path)
    x = np.ascontiguousarray(x_chw.transpose(3, 2, 1, 0))  # [T, C, H, W] -> (W, H, C, T)
    if x.shape[:-1] != tuple(net.inp.shape):
        raise SystemExit(f"input {list(x_chw.shape)} (T, C, H, W) does not fit net.inp {net.inp.shape} (W, H, C)")
    src = io.source.RingBuffer(data=x)
    # lava-dl 0.6.0's netx Input block never connects its ``inp`` port to its neuron ("the input must
    # be handled through neuron's bias"): ``src.s_out.connect(net.inp)`` fails to compile ("No
    # subcompiler exists for ... PyInputModel"). Drive the input LIF's ``a_in`` directly instead.
    src.s_out.connect(net.in_layer.neuron.a_in)
    # netx builds no process for flatten layers: map Lava's layers onto the file's neuron layers
    types = _layer_types(net_path)
    ours = [i for i, t in enumerate(types) if t != "flatten"]
    if len(ours) != len(net.layers):
        raise SystemExit(f"{len(net.layers)} Lava layers for file layers {types}")
    if reset_interval:  # as lava-dl's netx test_tinynet: layer k (netx blocks) reset with offset k - 1
        for k, lay in enumerate(net.layers):
            for var in (lay.neuron.u, lay.neuron.v):
                io.reset.Reset(interval=reset_interval, offset=k - 1).connect_var(var)
    sinks = []
    for lay in net.layers:
        sink = io.sink.RingBuffer(shape=lay.out.shape, buffer=steps)
        lay.out.connect(sink.a_in)
        sinks.append(sink)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    res: dict[str, np.ndarray] = {}
    if record:
        us = [[] for _ in net.layers]
        vs = [[] for _ in net.layers]
        for _ in range(steps):
            net.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            for k, lay in enumerate(net.layers):
                us[k].append(np.asarray(lay.neuron.u.get()).astype(np.int64))
                vs[k].append(np.asarray(lay.neuron.v.get()).astype(np.int64))
        for k, i in enumerate(ours):
            res[f"u_{i}"] = _to_ours(np.stack(us[k], axis=-1))
            res[f"v_{i}"] = _to_ours(np.stack(vs[k], axis=-1))
    else:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
    for k, i in enumerate(ours):
        res[f"spikes_{i}"] = _to_ours(np.asarray(sinks[k].data.get())).astype(np.uint8)
    net.stop()
    res["out"] = res[f"spikes_{ours[-1]}"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("net")
    ap.add_argument("input", help="integer input [T, C, H, W] or [T, N, C, H, W] (.npy)")
    ap.add_argument("out", help="output .npz")
    ap.add_argument("--record", action="store_true", help="also save per-layer u and v (RunSteps(1) loop)")
    ap.add_argument("--reset-interval", type=int, help="reset u and v of layer k every N steps at offset k - 1")
    a = ap.parse_args(argv)
    x = np.load(a.input)
    if x.ndim == 4:
        x = x[:, None]
    if x.ndim != 5:
        raise SystemExit(f"input must be [T, C, H, W] or [T, N, C, H, W], found {list(x.shape)}")
    if np.any(x != np.trunc(x)):
        raise SystemExit("input must be integers")
    t0 = time.time()
    per = [run_sample(a.net, x[:, n].astype(np.int64), a.record, a.reset_interval) for n in range(x.shape[1])]
    merged = {k: np.stack([p[k] for p in per], axis=1) for k in per[0]}  # [T, N, ...]
    np.savez_compressed(a.out, **merged)
    print(
        f"lava fixed_pt: {x.shape[1]} sample(s) x {x.shape[0]} steps in {time.time() - t0:.1f} s, "
        f"output spikes {int(merged['out'].sum())} -> {a.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
