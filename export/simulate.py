"""``spklip-energy simulate NET.net``: run a netx network on spike input in the fixed-point reference.

Input, by what the network is:

* an export of this project (``export.json`` and ``host.onnx`` beside the
  ``.net``): a clip (``--data builtin`` takes the first test clip, or a ``.dat``
  file decoded at the model's frame size) goes through the host front end
  (onnxruntime), and each temporal block becomes one independent sample that
  drives the input layer's ``a_in`` for ``--steps`` steps (default: the SNN time
  steps plus one step of latency per synaptic layer);
* any other netx file (Lava's own, for instance): the ``.dat`` frames are the
  input spikes, one frame per step, so its input layer must be ``(1, H, W)``.

Engines: the project's bit-exact numpy reference (:mod:`.loihi_engine`), always; Lava's own
fixed-point simulator with ``--engine lava|both`` when its environment exists (``make lava-env``;
it runs :mod:`.lava_runner` there as a subprocess; ``docs/lava.md``).
Energy: synaptic events at the ``loihi`` preset's per-op figure, which carries
its UNVERIFIED flag into the output.

Its input (:func:`simulation_input`) is also what ``report NET.net`` profiles
(:func:`spklip_energy.analysis.analyse_netx`) and, pipelined the same way, what
``export --format lava --verify`` runs (:mod:`.lava_verify`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from spklip_energy.errors import ConfigError, first_line
from spklip_energy.options import check_positive_int

from .loihi_engine import SimResult, check_simulation, simulate
from .netx_format import NetxNet, read_netx


def _export_record(net_path: Path) -> dict | None:
    meta = net_path.parent / "export.json"
    if not meta.is_file():
        return None
    try:
        rec = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"{meta}: unreadable export record") from None
    if not isinstance(rec, dict) or rec.get("format") != "lava" or rec.get("lava", {}).get("file") != net_path.name:
        return None
    cfg = rec.get("config")
    if (
        not isinstance(cfg, dict)
        or not all(k in cfg for k in ("frames", "height", "width", "fsve"))
        or not isinstance(rec.get("host"), dict)
        or "file" not in rec["host"]
    ):
        raise ConfigError(f"{meta}: export record lacks the model config or the host front end")
    fsve = cfg["fsve"] if isinstance(cfg["fsve"], dict) else {}
    for key, value in (
        ("frames", cfg["frames"]),
        ("height", cfg["height"]),
        ("width", cfg["width"]),
        ("fsve.time_steps", fsve.get("time_steps")),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{meta}: config {key} must be a positive integer, found {value!r}")
    if not isinstance(rec["host"]["file"], str) or Path(rec["host"]["file"]).name != rec["host"]["file"]:
        raise ConfigError(f"{meta}: host file {rec['host']['file']!r} must be a file name beside the network")
    return rec


def _clip_for(data: str, rec: dict | None, frames: int | None, height: int | None, width: int | None) -> np.ndarray:
    """One clip ``[frames, H, W]`` (uint8) from ``builtin``, a dataset folder or a ``.dat`` file."""
    from spikedata.dat import read_dat

    p = Path(data)
    if data != "builtin" and p.suffix == ".dat":
        if height is None or width is None:
            raise ConfigError(f"{p}: the frame size is unknown (the network's input layer is not (1, H, W))")
        return read_dat(p, height, width, count=frames)
    from spikedata.clips import ClipSelection, read_clip
    from spikedata.manifest import load_manifest
    from spklip.data import resolve_data

    m = load_manifest(resolve_data(data))
    recs = [c for c in m.clips if c.split == "test"] or list(m.clips)
    clip = read_clip(recs[0], 0, recs[0].frames, ClipSelection())
    if height is not None and tuple(clip.shape[1:]) != (height, width):
        raise ConfigError(f"{data}: clips are {clip.shape[1]}x{clip.shape[2]}, the network needs {height}x{width}")
    return clip[:frames] if frames else clip


def onnxruntime_errors() -> tuple[type[BaseException], ...]:
    """What onnxruntime raises for a model or input it cannot load or run: its own exception types
    (``Fail``, ``InvalidGraph``, ``InvalidProtobuf``, ``InvalidArgument``, ...), and the RuntimeError,
    ValueError and OSError of its Python layer (a wrong input name, an unreadable file)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    own = tuple(c for c in vars(state).values() if isinstance(c, type) and issubclass(c, Exception))
    return (*own, RuntimeError, ValueError, OSError)


def host_inputs(net_path: Path, rec: dict, clip: np.ndarray) -> np.ndarray:
    """Run ``host.onnx`` on one clip: ``a_in`` ``[blocks, C, H', W']`` (int64)."""
    import onnxruntime as ort

    cfg = rec["config"]
    want = (cfg["frames"], cfg["height"], cfg["width"])
    if clip.ndim != 3 or clip.shape[1:] != want[1:] or clip.shape[0] < want[0]:
        raise ConfigError(
            f"input clip of shape {list(clip.shape)} does not fit the exported model "
            f"(needs [>= {want[0]}, {want[1]}, {want[2]}])"
        )
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    host = net_path.parent / rec["host"]["file"]
    if not host.is_file():
        raise ConfigError(f"{host}: the export's host front end is missing")
    x = clip[None, : want[0]].astype(np.float32)
    try:
        sess = ort.InferenceSession(str(host), opts, providers=["CPUExecutionProvider"])
        out = sess.run(None, {"spikes": x})[0]
    except onnxruntime_errors() as exc:
        raise ConfigError(f"{host}: onnxruntime cannot run the host front end ({first_line(exc)})") from None
    out = np.asarray(out)
    if out.ndim != 4 or not np.all(np.isfinite(out)):
        raise ConfigError(
            f"{host}: the host front end gives {list(out.shape)} "
            f"{'non-finite values' if out.ndim == 4 else 'values'}, expected finite [blocks, C, H, W]"
        )
    return np.rint(out).astype(np.int64)


def loihi_energy(res: SimResult) -> dict:
    """Energy of the synaptic events at the ``loihi`` preset (flags and warnings carried)."""
    from energy.costs import get_preset

    model = get_preset("loihi")
    t = res.totals()
    return {
        "preset": "loihi",
        "synaptic_j": t["synaptic_events"] * model.e_ac_pj * 1e-12,
        "per_synaptic_event_pj": model.e_ac_pj,
        "flags": list(model.flags),
        "warnings": list(model.warnings),
    }


def pipeline(a: np.ndarray, per_block: int, latency: int) -> np.ndarray:
    """Blocks ``[n, C, H, W]`` one after another in time: block ``b`` drives steps ``[b*T, (b+1)*T)``,
    then ``latency`` steps of zeros flush the chain; ``[n*T + latency, 1, C, H, W]``."""
    n = a.shape[0]
    out = np.zeros((n * per_block + latency, 1, *a.shape[1:]), dtype=np.int64)
    out[: n * per_block, 0] = np.repeat(a, per_block, axis=0)
    return out


def block_windows(spikes: np.ndarray, layer: int, blocks: int, per_block: int) -> np.ndarray:
    """Neuron layer ``layer``'s spikes ``[S, 1, ...]`` of a pipelined run, as ``[T, blocks, ...]``."""
    w = spikes[layer : layer + blocks * per_block, 0]
    return w.reshape(blocks, per_block, *w.shape[1:]).swapaxes(0, 1)


def simulation_input(
    net_path: str | os.PathLike, data: str = "builtin", steps: int | None = None
) -> tuple[NetxNet, np.ndarray, str, dict, dict | None]:
    """(network, ``a_in`` ``[steps, samples, C, H, W]``, a description of the input, schedule, the
    export record beside the network or None).

    An export of this project runs its clip's blocks pipelined (``schedule["reset_interval"]`` = the
    steps per block, ``--steps`` overriding ``fsve.time_steps``); a plain netx file takes the ``.dat``
    frames one per step, no resets."""
    net_path = Path(net_path)
    if steps is not None:
        steps = check_positive_int(steps, "--steps")
    if net_path.is_dir():
        raise ConfigError(f"{net_path}: is a folder, not a netx file (give FOLDER/visual_cnn.net)")
    net: NetxNet = read_netx(net_path)
    rec = _export_record(net_path)
    if rec is not None:
        cfg = rec["config"]
        per_block = steps or cfg["fsve"]["time_steps"]
        latency = sum(lay.synaptic for lay in net.layers)
        cause = f"--steps {steps}" if steps else f"fsve.time_steps {per_block} in {net_path.parent / 'export.json'}"
        # before any data is read: at least one block (the exact count is checked again below)
        check_simulation(net, per_block + latency, 1, cause)
        clip = _clip_for(data, rec, cfg["frames"], cfg["height"], cfg["width"])
        a = host_inputs(net_path, rec, clip)
        if tuple(a.shape[1:]) != tuple(net.input_shape):
            raise ConfigError(
                f"{net_path.name}: host front end gives {list(a.shape[1:])}, the input layer "
                f"expects {list(net.input_shape)}"
            )
        check_simulation(net, a.shape[0] * per_block + latency, 1, f"{cause}, {a.shape[0]} blocks")
        a_in = pipeline(a, per_block, latency)
        source = (
            f"{len(clip)}-frame clip -> host.onnx -> {a.shape[0]} blocks x {per_block} steps, pipelined "
            f"({a_in.shape[0]} steps with {latency} of latency)"
        )
        schedule = {"reset_interval": per_block, "blocks": int(a.shape[0]), "per_block": per_block, "latency": latency}
    else:
        c, h, w = net.input_shape
        if c != 1:
            raise ConfigError(
                f"{net_path.name}: input layer is {list(net.input_shape)} (C, H, W); spike frames "
                "feed only a (1, H, W) input"
            )
        if steps:  # before the frames are read
            check_simulation(net, steps, 1, f"--steps {steps}")
        clip = _clip_for(data, None, steps, h, w)  # at least one frame: readers refuse empty files and clips
        check_simulation(net, len(clip), 1, f"--steps {steps}" if steps else f"{len(clip):,} frames of {data}")
        a_in = clip[:, None, None].astype(np.int64)
        source = f"{a_in.shape[0]} spike frames of {h}x{w}, one per step"
        schedule = {"reset_interval": None}
    return net, a_in, source, schedule, rec


ENGINES = ("reference", "lava", "both")
RUNNER = Path(__file__).with_name("lava_runner.py")


def lava_python() -> Path | None:
    """The Lava environment's interpreter: ``$SPKLIP_LAVA_PYTHON``, else ``.lava-venv`` here or in the checkout."""
    env = os.environ.get("SPKLIP_LAVA_PYTHON")
    for cand in ([Path(env)] if env else []) + [
        Path(".lava-venv/bin/python"),
        Path(__file__).resolve().parents[1] / ".lava-venv/bin/python",
    ]:
        if cand.is_file():
            return cand
    return None


def run_lava(
    net_path: Path, a_in: np.ndarray, record: bool = False, reset_interval: int | None = None, timeout: float = 900
) -> dict[str, np.ndarray]:
    """Run ``net_path`` in Lava's fixed-point simulator (``Loihi2SimCfg``, ``fixed_pt``) through
    :mod:`.lava_runner` in the Lava environment; arrays in this project's ``[T, N, ...]`` layout."""
    import subprocess
    import tempfile

    py = lava_python()
    if py is None:
        raise ConfigError(
            "Lava is not installed: build its environment with 'make lava-env' (or set "
            "SPKLIP_LAVA_PYTHON); see docs/lava.md"
        )
    with tempfile.TemporaryDirectory() as d:
        inp, out = Path(d) / "in.npy", Path(d) / "out.npz"
        np.save(inp, np.ascontiguousarray(a_in, dtype=np.int64))
        cmd = (
            [str(py), str(RUNNER), str(net_path), str(inp), str(out)]
            + (["--record"] if record else [])
            + (["--reset-interval", str(reset_interval)] if reset_interval else [])
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"{net_path.name}: Lava's simulator failed ({last})")
        with np.load(out) as z:
            return {k: z[k] for k in z.files}


def compare_engines(res: SimResult, lava: dict[str, np.ndarray]) -> dict:
    """Spikes per layer of the reference against Lava's: mismatching elements (0 everywhere = bit-exact)."""
    layers = []
    for i, s in res.spikes.items():
        got = lava.get(f"spikes_{i}")
        mism = None if got is None else int((got.reshape(s.shape).astype(bool) != s).sum())
        layers.append(
            {
                "index": i,
                "spikes_reference": int(s.sum()),
                "spikes_lava": None if got is None else int(got.sum()),
                "mismatches": mism,
            }
        )
    return {"layers": layers, "bit_exact": all(x["mismatches"] == 0 for x in layers)}


def run_simulation(
    net_path: str | os.PathLike,
    data: str = "builtin",
    steps: int | None = None,
    keep_spikes: bool = False,
    engine: str = "reference",
) -> tuple[dict, SimResult]:
    """Simulate ``net_path`` on one clip of ``data``; returns (JSON-able summary, result). ``engine``:
    ``reference`` (this project's), ``lava`` (Lava's simulator; counts still from the reference, which
    must then agree with it) or ``both`` (both, compared spike by spike)."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r} (choose {', '.join(ENGINES)})")
    t0 = time.perf_counter()
    net, a_in, source, sched, _ = simulation_input(net_path, data, steps)
    host_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = simulate(net, a_in, keep_spikes=True, reset_interval=sched["reset_interval"])
    sim_s = time.perf_counter() - t1
    lava = None
    if engine != "reference":
        t2 = time.perf_counter()
        lava = compare_engines(res, run_lava(Path(net_path), a_in, reset_interval=sched["reset_interval"]))
        lava["seconds"] = round(time.perf_counter() - t2, 3)
    out = res.output
    if sched["reset_interval"]:  # per block: the output layer's spikes in that block's window
        last = len([lay for lay in net.layers if lay.type != "flatten"]) - 1
        win = block_windows(out, last, sched["blocks"], sched["per_block"])
        per_sample = win.reshape(win.shape[0], win.shape[1], -1).sum(axis=(0, 2)).tolist()
    else:
        per_sample = out.reshape(out.shape[0], out.shape[1], -1).sum(axis=(0, 2)).tolist()
    summary = {
        "network": str(net_path),
        "engine": "spklip-energy fixed-point CUBA-LIF reference (numpy)"
        + ("" if engine == "reference" else " + Lava fixed_pt simulator (lava-nc 0.10.0, lava-dl 0.6.0)"),
        "schedule": sched,
        "input": source,
        "steps": res.steps,
        "samples": res.samples,
        "layers": res.layers,
        "totals": res.totals(),
        "output": {"shape": list(out.shape), "spikes": int(out.sum()), "spikes_per_sample": per_sample},
        "energy": loihi_energy(res),
        "seconds": {"host": round(host_s, 3), "simulation": round(sim_s, 3)},
        "warnings": net.warnings(),
    }
    if lava is not None:
        summary["lava"] = lava
        if engine == "lava" and not lava["bit_exact"]:
            summary["warnings"].append("Lava's spikes differ from the reference's; counts are the reference's")
    if not keep_spikes:
        res.spikes = {}
    return summary, res


__all__ = [
    "ENGINES",
    "block_windows",
    "onnxruntime_errors",
    "pipeline",
    "compare_engines",
    "lava_python",
    "run_lava",
    "host_inputs",
    "simulation_input",
    "loihi_energy",
    "run_simulation",
]
