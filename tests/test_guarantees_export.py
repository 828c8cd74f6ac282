"""Issue 12 on the export side: netx files, simulate, convert and export refuse bad input with one line,
before reading or allocating what the input declares; every export format runs through the CLI."""

from __future__ import annotations

import json
import math
import tempfile
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import check_user_error, run_main
from export_helpers import small_checkpoint
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from convert.ratecode import MAX_TIMESTEPS
from convert.sweep import convert_checkpoint, parse_timesteps
from export import export_checkpoint
from export import loihi_engine as engine
from export.netx_format import NetxLayer, NetxNet, NetxNeuron, read_netx, write_netx
from export.simulate import run_simulation
from spikedata.dat import write_dat
from spklip.io import load_spklip
from spklip_energy import limits
from spklip_energy.checkpoint import load_checkpoint, save_checkpoint
from spklip_energy.errors import CheckpointError, ConfigError, ResourceError, SpklipError

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``spklip-energy ARGV``; argparse's own refusals count too."""
    return run_main(capsys, *argv)


def refused(argv, capsys, *needles) -> str:
    code, _, err = cli(argv, capsys)
    return check_user_error(code, err, *needles)


# --------------------------------------------------------------------------- netx files


def small_net() -> NetxNet:
    rng = np.random.default_rng(0)
    return NetxNet(
        [
            NetxLayer("input", (1, 16, 16), NetxNeuron(4096, 4096, 0)),
            NetxLayer(
                "conv",
                (4, 8, 8),
                NetxNeuron(4096, 1024, 40),
                weight=rng.integers(-30, 60, (4, 1, 3, 3)),
                stride=(2, 2),
                padding=(1, 1),
            ),
        ]
    )


@pytest.fixture
def net_file(tmp_path) -> Path:
    return write_netx(tmp_path / "g.net", small_net())


def test_huge_declared_weight_is_refused_from_its_header(net_file, capsys):
    with h5py.File(net_file, "a") as h:  # 10**12 float32 declared, nothing stored: the file stays small
        del h["layer/1/weight"]
        h["layer/1"].create_dataset("weight", shape=(10**6, 10**6), dtype="f4")
    assert net_file.stat().st_size < 100_000
    line = refused(
        ["simulate", net_file], capsys, str(net_file), "/layer/1/weight", "[1000000, 1000000]", "over the limit"
    )
    assert "TiB" in line
    with pytest.raises(ResourceError):
        read_netx(net_file)


def test_the_sum_over_layers_is_checked(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    layers = [NetxLayer("input", (8, 8, 8), NetxNeuron(4096, 4096, 0))]
    layers += [
        NetxLayer(
            "conv", (8, 8, 8), NetxNeuron(4096, 1024, 40), weight=rng.integers(-9, 9, (8, 8, 3, 3)), padding=(1, 1)
        )
        for _ in range(6)
    ]
    path = write_netx(tmp_path / "deep.net", NetxNet(layers))
    per_weight = 8 * 8 * 9 * (4 + 16)  # float32 values, read as float64 and kept as int64
    limits.set_memory_limit(3 * per_weight)  # every dataset fits, the six weights together do not
    try:
        with pytest.raises(
            ResourceError, match=r"reading .*deep\.net would need .*declared shapes of its \d+ datasets"
        ):
            read_netx(path)
    finally:
        limits.set_memory_limit(None)
    assert len(read_netx(path).layers) == 7


@pytest.mark.parametrize(
    "case, needle",
    [
        ("external-link", "/layer/1/weight is an external link to"),
        ("soft-link", "/layer/1/weight is a soft link to /layer/0/shape"),
        ("external-storage", "/layer/1/weight keeps its data in the external file"),
        ("virtual", "/layer/1/weight is a virtual dataset"),
        ("layer-link", "/layer is a SoftLink"),
        ("neuron-link", "/layer/1/neuron/vThMant is an external link"),
    ],
)
def test_data_outside_the_file_is_refused(net_file, tmp_path, case, needle, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(36, dtype=np.float32).tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h:
        h.create_dataset("w", data=np.ones((4, 1, 3, 3), np.float32))
    with h5py.File(net_file, "a") as h:
        g = h["layer/1"]
        if case == "layer-link":
            h.move("layer", "real")
            h["layer"] = h5py.SoftLink("/real")
        elif case == "neuron-link":
            del g["neuron/vThMant"]
            g["neuron/vThMant"] = h5py.ExternalLink(str(other), "/w")
        else:
            del g["weight"]
            if case == "external-link":
                g["weight"] = h5py.ExternalLink(str(other), "/w")
            elif case == "soft-link":
                g["weight"] = h5py.SoftLink("/layer/0/shape")
            elif case == "external-storage":
                g.create_dataset("weight", shape=(4, 1, 3, 3), dtype="f4", external=[(str(secret), 0, 144)])
            else:
                lay = h5py.VirtualLayout(shape=(4, 1, 3, 3), dtype="f4")
                lay[:] = h5py.VirtualSource(str(other), "w", shape=(4, 1, 3, 3))
                g.create_virtual_dataset("weight", lay)
    refused(["simulate", net_file], capsys, str(net_file), needle)


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("layer/1/neuron/vThMant", np.float64(np.inf), "neuron vThMant must be an integer"),
        ("layer/1/neuron/iDecay", np.float64(np.nan), "neuron iDecay must be an integer"),
        ("layer/1/groups", np.int64(2**40), "groups must be an integer within"),
        ("layer/1/weight", np.full((4, 1, 3, 3), 1e300), "weight holds values beyond"),
        ("layer/1/stride", np.array([np.inf, 1.0]), "stride must hold integers"),
        ("layer/1/shape", np.array([4, 8]), "shape must be (C, H, W)"),
        ("layer/1/shape", np.array([4.5, 8, 8]), "shape holds non-integer values"),
        ("layer/1/stride", np.arange(10**5), "stride must be a scalar or a pair, found 100000 values"),
        # scalar fields hold exactly one value: every one read_netx reads as a scalar
        (
            "layer/1/neuron/iDecay",
            np.full(5, 4096),
            "layer 1: neuron iDecay must be a scalar (one value), found 5 values",
        ),
        (
            "layer/1/neuron/vDecay",
            np.full(3, 1024),
            "layer 1: neuron vDecay must be a scalar (one value), found 3 values",
        ),
        (
            "layer/1/neuron/vThMant",
            np.full((2, 2), 40),
            "layer 1: neuron vThMant must be a scalar (one value), found 4 values of shape [2, 2]",
        ),
        ("layer/0/neuron/vThMant", np.zeros(0), "layer 0: neuron vThMant must be a scalar (one value), found 0 values"),
        (
            "layer/1/neuron/vDecay",
            h5py.Empty("f4"),
            "layer 1: neuron vDecay must be a scalar (one value), found an empty dataset",
        ),
        ("layer/1/neuron/messageBits", np.zeros(2), "layer 1: neuron messageBits must be a scalar (one value)"),
        ("layer/1/neuron/type", np.array([b"CUBA", b"CUBA"]), "layer 1: neuron type must be a scalar (one value)"),
        ("layer/1/groups", np.array([1, 1]), "layer 1: groups must be a scalar (one value), found 2 values"),
        ("layer/1/type", np.array([b"conv"] * 3), "layer 1: type must be a scalar (one value), found 3 values"),
        ("layer/0/weight", np.ones(3), "layer 0: weight must be a scalar (one value), found 3 values"),
        ("layer/0/bias", np.float64(np.nan), "layer 0: bias must be a finite number"),
        ("simulation/Ts", np.arange(3), "simulation: Ts must be a scalar (one value), found 3 values"),
        # numbers are numbers: complex, boolean or text values are refused, not cast (numpy would drop the
        # imaginary part with a warning on stderr)
        (
            "layer/1/weight",
            np.ones((4, 1, 3, 3), np.complex64),
            "weight must hold integers or real numbers, found complex64",
        ),
        ("layer/1/weight", np.ones((4, 1, 3, 3), bool), "weight must hold integers or real numbers, found bool"),
        ("layer/1/stride", np.array([b"2", b"2"]), "stride must hold integers or real numbers"),
        ("layer/1/neuron/iDecay", np.complex128(4096), "neuron iDecay must be an integer, found"),
        ("layer/1/neuron/vThMant", np.bool_(True), "neuron vThMant must be an integer, found"),
    ],
)
def test_malformed_fields_are_one_line(net_file, field, value, needle, capsys):
    with h5py.File(net_file, "a") as h:
        if field in h:
            del h[field]
        h.create_dataset(field, data=value)
    line = refused(["simulate", net_file], capsys, "g.net", needle)
    assert len(line) < 400


def test_scalar_fields_of_one_value_in_any_shape_are_read(net_file):
    """netx itself writes ``type`` as a (1,) array and neuron values as () scalars: both are one value."""
    with h5py.File(net_file, "a") as h:
        for field, value in (
            ("layer/1/neuron/iDecay", np.array([4095])),
            ("layer/1/neuron/vThMant", np.array([[41]])),
            ("layer/1/groups", np.array([1])),
            ("simulation/Ts", 1),
        ):
            if field in h:
                del h[field]
            h.create_dataset(field, data=value)
    lay = read_netx(net_file).layers[1]
    assert (lay.neuron.i_decay, lay.neuron.v_th_mant, lay.groups) == (4095, 41, 1)


# Byte flips (XOR 0xff) of a written network: (seed, first byte, end byte or None for the file's end, bytes).
# They hit the superblock, object headers, B-trees, local heaps and data, each a different h5py failure
# (OSError on opening, RuntimeError iterating a group, KeyError opening an object, UnicodeDecodeError on a
# name, a link listed but missing ...) at a different step of reading.
CORRUPTIONS = [
    (3, 0, None, 40),
    (0, 8, 96, 20),
    (1, 96, 2048, 40),
    (2, 2048, 8192, 40),
    (4, 8192, None, 40),
    (5, 0, None, 40),
    (7, 0, None, 40),
    (11, 0, None, 60),
    (12, 0, None, 60),
    (13, 0, None, 60),
]


def _corrupted(src: Path, dst: Path, seed: int, lo: int, hi: int | None, n: int) -> Path:
    data = bytearray(src.read_bytes())
    for i in np.random.default_rng(seed).integers(lo, hi or len(data), n):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def test_corrupt_net_files_are_one_line_through_the_cli(net_file, tmp_path, capsys):
    """A damaged .net (bytes flipped at different offsets) is one line naming it, exit 2, no traceback,
    whichever step of reading meets the damage, for both verbs that read netx files."""
    dat = write_dat(tmp_path / "x.dat", (np.random.default_rng(0).random((4, 16, 16)) < 0.2).astype(np.uint8))
    corrupt = 0
    for k, (seed, lo, hi, n) in enumerate(CORRUPTIONS):
        bad = _corrupted(net_file, tmp_path / f"flip{k}.net", seed, lo, hi, n)
        line = refused(["simulate", bad, "--data", dat], capsys, str(bad))
        corrupt += "corrupt HDF5 file (" in line
        out = tmp_path / f"rep{k}"
        assert refused(["report", bad, "--out", out], capsys, str(bad)) == line
        assert not out.exists()
    assert corrupt >= len(CORRUPTIONS) // 2, f"expected most flips to read as corrupt HDF5, found {corrupt}"


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("Link iteration failed (bad heap free list)"),
        OSError("Can't synchronously read data (bad heap index)"),
        KeyError("Unable to synchronously open object (bad object header)"),
        ValueError("Invalid dataspace"),
        TypeError("unexpected dtype"),
    ],
)
@pytest.mark.parametrize("where", ["iterate", "read"])
def test_any_h5py_error_while_reading_is_one_line_naming_the_file(net_file, monkeypatch, exc, where):
    """Whatever h5py raises, at whichever later read, read_netx turns it into one ConfigError line."""

    def fail(*args, **kwargs):
        raise exc

    if where == "iterate":  # iterating a group's links: what flip_keep.net hit
        monkeypatch.setattr(h5py.Group, "__iter__", fail)
    else:  # reading a dataset's values, after the layout check
        monkeypatch.setattr(h5py.Dataset, "__getitem__", fail)
    with pytest.raises(ConfigError) as info:
        read_netx(net_file)
    text = str(info.value)
    assert str(net_file) in text and "\n" not in text and type(exc).__name__ in text, text
    corrupt = isinstance(exc, (RuntimeError, OSError, KeyError))
    assert ("corrupt HDF5 file (" in text) == corrupt, text


@pytest.mark.parametrize("error", [PermissionError, FileNotFoundError, IsADirectoryError])
def test_file_system_errors_on_open_are_not_called_corrupt(net_file, monkeypatch, capsys, error):
    """h5py reports the file system's errors as OSError subclasses with an errno (and no file name): they
    are the file system's, not a damaged file's, and reach the CLI as such, naming the file."""
    import errno
    import os

    code = {PermissionError: errno.EACCES, FileNotFoundError: errno.ENOENT, IsADirectoryError: errno.EISDIR}[error]

    def fail(*args, **kwargs):  # what h5py raises: the errno, its own long text, no file name
        raise error(code, f"Unable to synchronously open file (unable to open file: errno = {code}, ...)")

    monkeypatch.setattr(h5py, "File", fail)
    with pytest.raises(error) as info:
        read_netx(net_file)
    assert info.value.filename == str(net_file) and info.value.strerror == os.strerror(code)
    line = refused(["simulate", net_file], capsys, str(net_file), os.strerror(code))
    assert "corrupt" not in line and "malformed" not in line


def test_a_bug_in_the_reader_is_not_called_a_malformed_file(net_file, monkeypatch):
    """Only h5py's calls are guarded: the reader's own TypeError (a bug) is not a one-line file error."""
    import export.netx_format as netx_format

    def bug(*args, **kwargs):
        raise TypeError("a bug in the reader")

    monkeypatch.setattr(netx_format, "_read_neuron", bug)
    with pytest.raises(TypeError, match="a bug in the reader"):
        read_netx(net_file)


def test_hdf5_files_are_told_by_their_signature(net_file, tmp_path):
    """The signature may follow a user block (512, 1024, ... bytes); a file without it is not HDF5,
    whatever it holds."""
    ub = tmp_path / "userblock.net"
    with h5py.File(net_file, "r") as src, h5py.File(ub, "w", userblock_size=1024) as dst:
        for name in src:
            src.copy(name, dst)
    assert [lay.shape for lay in read_netx(ub).layers] == [lay.shape for lay in read_netx(net_file).layers]
    for name, data in (("short.net", b"\x89HDF"), ("late.net", b"\0" * 700 + b"\x89HDF\r\n\x1a\n" + b"\0" * 99)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match="not an HDF5 file"):
            read_netx(tmp_path / name)


def test_onnxruntime_failures_are_one_line_and_bugs_are_not(tmp_path, monkeypatch):
    import onnxruntime

    from export.simulate import host_inputs

    rec = {"config": {"frames": 4, "height": 8, "width": 8}, "host": {"file": "host.onnx"}}
    (tmp_path / "host.onnx").write_bytes(b"not an onnx model")
    clip = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(ConfigError, match=r"host\.onnx: onnxruntime cannot run the host front end \(\w+: ") as info:
        host_inputs(tmp_path / "g.net", rec, clip)
    assert "\n" not in str(info.value)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("not onnxruntime's")

    monkeypatch.setattr(onnxruntime, "InferenceSession", bug)
    with pytest.raises(ZeroDivisionError):
        host_inputs(tmp_path / "g.net", rec, clip)


# --------------------------------------------------------------------------- simulate


def test_simulate_huge_steps_refused_before_anything_is_read(net_file, tmp_path, capsys):
    dat = write_dat(tmp_path / "c.dat", (np.random.default_rng(0).random((20, 16, 16)) < 0.2).astype(np.uint8))
    tracemalloc.start()
    try:
        refused(["simulate", net_file, "--data", dat, "--steps", 10**9], capsys, "--steps 1000000000", "g.net")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    # with memory to spare, the work ceiling refuses it (an hour of CPU, docs/lava.md)
    line = refused(
        ["--max-memory", "1e18", "simulate", net_file, "--data", dat, "--steps", 10**11],
        capsys,
        "--steps 100000000000",
        "synaptic operations",
        f"{engine.MAX_SYNAPTIC_OPS:,}",
    )
    assert "about an hour" in line
    # the .dat frames themselves set the steps: fine
    code, out, _ = cli(["simulate", net_file, "--data", dat, "--json"], capsys)
    assert code == 0 and json.loads(out)["steps"] == 20


@pytest.mark.parametrize("steps", [0, -3, True, "x", 2.5])
def test_library_validates_steps(net_file, steps):
    with pytest.raises(ConfigError, match="--steps"):
        run_simulation(net_file, steps=steps)


def test_simulate_checks_work_and_memory_itself(monkeypatch):
    net = small_net()
    a = np.zeros((3, 2, 1, 16, 16), np.int64)
    synops, updates = engine.simulation_work(net, 3, 2)
    assert synops == 3 * 2 * 4 * 8 * 8 * 9 and updates == 3 * 2 * (256 + 256)
    monkeypatch.setattr(engine, "MAX_SYNAPTIC_OPS", synops - 1)
    with pytest.raises(ResourceError, match="synaptic operations"):
        engine.simulate(net, a)
    monkeypatch.setattr(engine, "MAX_SYNAPTIC_OPS", synops)
    assert engine.simulate(net, a).steps == 3
    monkeypatch.setenv(limits.ENV_MEMORY, str(engine.simulation_bytes(net, 3, 2) - 1))
    with pytest.raises(ResourceError, match=r"simulating .*3 steps x 2 samples"):
        engine.simulate(net, a)


def test_memory_estimate_covers_what_the_engine_allocates():
    rng = np.random.default_rng(2)
    net = NetxNet(
        [
            NetxLayer("input", (3, 12, 12), NetxNeuron(4096, 1024, 10)),
            NetxLayer(
                "conv",
                (6, 12, 12),
                NetxNeuron(4096, 1024, 30),
                weight=rng.integers(-9, 9, (6, 3, 3, 3)),
                padding=(1, 1),
            ),
            NetxLayer(
                "conv",
                (4, 6, 6),
                NetxNeuron(4096, 1024, 30),
                weight=rng.integers(-9, 9, (4, 2, 3, 3)),
                stride=(2, 2),
                padding=(1, 1),
                groups=2,
            ),
            NetxLayer("flatten", (144, 1, 1)),
            NetxLayer("dense", (5, 1, 1), NetxNeuron(4096, 1024, 30), weight=rng.integers(-9, 9, (5, 144))),
        ]
    )
    a = rng.integers(0, 2, (30, 2, 3, 12, 12)) * 20
    for record in (False, True):
        tracemalloc.start()
        engine.simulate(net, a, record=record)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= engine.simulation_bytes(net, 30, 2, record) <= 4 * peak + 2**20


# --------------------------------------------------------------------------- convert


@pytest.fixture(scope="module")
def ann_ckpt(tmp_path_factory, data):
    return small_checkpoint(tmp_path_factory.mktemp("ann"), data, "spklip")


def test_convert_huge_timesteps_refused_before_loading(tmp_path, capsys):
    missing = tmp_path / "never-read.pt"  # a checkpoint that does not exist: the options are checked first
    out = tmp_path / "c.pt"
    line = refused(
        ["convert", missing, "--layers", "cnn", "--timesteps", "8,1000000000", "--out", out],
        capsys,
        "--timesteps",
        "1,000,000,000",
        f"at most {MAX_TIMESTEPS:,}",
    )
    assert "never-read" not in line and not out.exists()
    assert parse_timesteps("16,4,4") == [4, 16] and parse_timesteps([MAX_TIMESTEPS]) == [MAX_TIMESTEPS]
    with pytest.raises(ConfigError, match=f"--timesteps must be at most {MAX_TIMESTEPS:,}, got 1,025"):
        parse_timesteps([4, MAX_TIMESTEPS + 1])


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"timesteps": "4,x"}, "--timesteps"),
        ({"timesteps": [0]}, "--timesteps must be at least 1"),
        ({"timesteps": [4, 8], "keep": 16}, "--keep 16 is not one of --timesteps 4,8"),
        ({"keep": 0}, "--keep must be at least 1"),
        ({"calib": 0}, "--calib must be at least 1"),
        ({"samples": 0}, "--samples must be at least 1"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"batch_size": 2.5}, "--batch-size expects an integer"),
        ({"percentile": float("nan"), "method": "percentile"}, "--percentile must be a finite number"),
        ({"percentile": 0, "method": "robust"}, "--percentile must be above 0"),
        ({"percentile": 101}, "--percentile must be at most 100"),
        ({"method": "mean"}, "unknown method 'mean'"),
        ({"layers": "stem,bogus"}, "unknown layer 'bogus'"),
        ({"device": "tpu"}, "unknown device"),
        ({"seed": -1}, "seed must be at least 0"),
    ],
)
def test_convert_library_checks_every_option_before_loading(tmp_path, kwargs, needle):
    args = {"layers": "cnn", "timesteps": [4], **kwargs}
    with pytest.raises(ConfigError) as info:
        convert_checkpoint(
            tmp_path / "never-read.pt", args.pop("layers"), args.pop("timesteps"), tmp_path / "c.pt", **args
        )
    assert needle in str(info.value) and "never-read" not in str(info.value)


def test_converted_card_keeps_its_timesteps_above_the_limit_of_new_conversions(ann_ckpt, data, tmp_path, capsys):
    """MAX_TIMESTEPS bounds new conversions only: a checkpoint saved with a larger T (possible before the
    limit existed) still loads and reports; a T that is not a positive integer is refused naming the file."""
    from convert import convert_spklip
    from convert.structure import converted_runs
    from spklip.io import save_spklip

    loaded = load_spklip(ann_ckpt)
    cfg = loaded.model.cfg
    clips = torch.rand(2, cfg.frames, cfg.height, cfg.width, generator=torch.Generator().manual_seed(0)) < 0.1
    conv, spec = convert_spklip(loaded.model, "layer4", 2, [clips.float()], "max")
    path = save_spklip(tmp_path / "conv.pt", conv, loaded.tokenizer, {"conversion": spec})
    ck = load_checkpoint(path)
    big = MAX_TIMESTEPS + 24
    save_checkpoint(path, ck.state_dict, {**ck.card, "conversion": {**spec, "timesteps": big}})
    assert [run.timesteps for run in converted_runs(load_spklip(path).model)] == [big]
    code, out, err = cli(["report", path, "--data", data, "--samples", "1", "--out", tmp_path / "r", "--json"], capsys)
    assert code == 0, err
    for bad in (0, -3, "many", True):
        save_checkpoint(path, ck.state_dict, {**ck.card, "conversion": {**spec, "timesteps": bad}})
        with pytest.raises(CheckpointError, match=r"conv\.pt: conversion record .*timesteps"):
            load_spklip(path)


def _poisoned(src: Path, dst: Path) -> tuple[Path, str]:
    ck = load_checkpoint(src)
    state = dict(ck.state_dict)
    name = next(k for k, t in state.items() if t.is_floating_point() and t.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_checkpoint(dst, state, ck.card)
    return dst, name


def test_nonfinite_weights_are_refused_by_convert_and_export(ann_ckpt, data, tmp_path, capsys):
    bad, name = _poisoned(ann_ckpt, tmp_path / "nan.pt")
    refused(
        ["convert", bad, "--layers", "cnn", "--timesteps", "2", "--data", data, "--out", tmp_path / "c.pt"],
        capsys,
        "nan.pt",
        repr(name),
        "NaN or Inf",
    )
    assert not (tmp_path / "c.pt").exists()
    for fmt in ("onnx", "lava"):
        refused(["export", bad, "--format", fmt, "--out", tmp_path / fmt], capsys, "nan.pt", repr(name))
        assert not (tmp_path / fmt).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_batch_memory_is_estimated_before_any_forward(ann_ckpt, data, tmp_path, monkeypatch):
    import convert.sweep as sweep

    calls = []
    monkeypatch.setattr(sweep, "visual_forward_bytes", lambda c, b, layers: calls.append(b) or 10**18)
    monkeypatch.setattr(sweep, "convert_spklip", lambda *a, **k: pytest.fail("ran a forward pass"))
    with pytest.raises(ResourceError, match=r"--batch-size 1000000, --samples 2"):
        convert_checkpoint(ann_ckpt, "cnn", [2], tmp_path / "c.pt", data=data, batch_size=10**6, samples=2)
    assert calls and calls[0] < 10**6  # the batch a forward pass can actually hold: the dataset's clips
    assert not (tmp_path / "c.pt").exists()


# --------------------------------------------------------------------------- memory of a forward pass


def _measured_peak(visual, cfg, clips: int, dtype) -> int:
    """Peak bytes torch's CPU allocator holds during one forward pass of ``clips`` clips (the input made
    inside the measurement), from the profiler's allocation and free events in time order."""
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        x = (torch.rand(clips, cfg.frames, cfg.height, cfg.width, generator=g) < 0.05).to(dtype)
        visual(x)
        del x
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    assert events, "the profiler recorded no allocations"
    held = peak = 0
    for e in events:
        held += e.nbytes()
        peak = max(peak, held)
    return peak


@pytest.mark.parametrize(
    "preset, overrides, converted, clips",
    [
        ("tiny", {}, "", 2),
        ("tiny", {"hsfe.input_pool": 1, "starnet.stem_strides": [2, 2, 2], "height": 128, "width": 128}, "", 1),
        ("reference", {"height": 60, "width": 80}, "", 1),  # the reference preset at a quarter of its resolution
        ("small", {}, "", 1),
        ("tiny", {"model": "fsve-hybrid", "fsve.width": 32}, "", 1),
        ("tiny", {"model": "fsve-full"}, "", 2),
        (
            "tiny",
            {"model": "fsve-full", "fsve.hsfe_encoding": "repeat", "fsve.time_steps": 4, "hsfe.input_pool": 1},
            "",
            1,
        ),
        ("tiny", {}, "all", 1),
        ("tiny", {"hsfe.input_pool": 1, "starnet.width": 32}, "cnn", 1),
    ],
    ids=[
        "tiny",
        "tiny-128-strided",
        "reference-60x80",
        "small",
        "fsve-hybrid",
        "fsve-full-spiking",
        "fsve-full-spiking-repeat-T4-unpooled",
        "converted-all",
        "converted-cnn",
    ],
)
def test_forward_memory_estimate_covers_the_measured_peak(preset, overrides, converted, clips):
    """The one estimate of a visual forward pass (report, convert, export --verify) is at least what torch
    allocates at the peak, for float32 clips (what it assumes), and at most four times what it allocates
    for the uint8 clips datasets give (a quarter of the input's bytes, pooled as integers without a float
    copy of the blocks)."""
    from convert import convert_spklip
    from spklip import build_spklip, preset_config
    from spklip.config import visual_forward_bytes

    cfg = preset_config(preset, overrides)
    model = build_spklip(cfg).eval()
    layers = []
    if converted:
        calib = torch.rand(2, cfg.frames, cfg.height, cfg.width, generator=torch.Generator().manual_seed(1)) < 0.05
        model, spec = convert_spklip(model, converted, 2, [calib.float()])
        layers = spec["layers"]
    estimate = visual_forward_bytes(cfg, clips, layers)
    as_float = _measured_peak(model.visual, cfg, clips, torch.float32)
    as_uint8 = _measured_peak(model.visual, cfg, clips, torch.uint8)
    assert as_float <= estimate <= 4 * as_uint8, (as_float / 2**20, estimate / 2**20, as_uint8 / 2**20)


def test_forward_memory_estimate_scales_with_clips_and_the_stem_strides():
    from spklip import preset_config
    from spklip.config import visual_forward_bytes

    ref = preset_config("reference")
    one, eight = visual_forward_bytes(ref, 1), visual_forward_bytes(ref, 8)
    assert 7.5 * one < eight < 8 * one  # linear in the clips, plus one weight copy per pass
    # the reference preset measures about 0.6 GiB per clip: eight fit the limit of a 16 GiB machine (8 GiB)
    assert 0.6 * 2**30 < one < 1.1 * 2**30 and eight < 8 * 2**30
    # STAR-Net's stem strides shrink what it holds; a converted run holds its membranes on top
    wide = {"starnet.width": 64, "hsfe.features": 8, "hsfe.input_pool": 1}
    strided = preset_config("tiny", {**wide, "starnet.stem_strides": [2, 2, 1]})
    wide = preset_config("tiny", wide)
    assert visual_forward_bytes(strided) < visual_forward_bytes(wide)
    assert visual_forward_bytes(ref, 1, ["hsfe"]) > 2 * one


def test_report_checks_the_forward_pass_not_only_the_clips(ann_ckpt, data, tmp_path, capsys):
    """``report --batch-size`` is refused when one forward pass would not fit, though the clips alone would."""
    loaded = load_spklip(ann_ckpt)
    cfg = loaded.model.cfg
    from spklip_energy.analysis import load_clips
    from spklip_energy.runners import runner_for

    n = len(load_clips(data, runner_for(load_checkpoint(ann_ckpt)))[0])
    batch = min(8, n)
    need, clips_only = loaded.forward_bytes(batch), batch * cfg.frames * cfg.height * cfg.width * 5
    assert need > 2 * clips_only
    out = tmp_path / "r"
    argv = ["report", ann_ckpt, "--data", data, "--samples", batch, "--batch-size", batch, "--out", out]
    line = refused(
        ["--max-memory", str((need + clips_only) // 2), *argv], capsys, f"batch_size {batch}", "over the limit"
    )
    assert "forward pass" in line and not out.exists()
    code, _, err = cli(["--max-memory", str(need + 2**20), *argv], capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- export: every format, through the CLI


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory, data):
    return small_checkpoint(
        tmp_path_factory.mktemp("plain"),
        data,
        "fsve-hybrid",
        calibrate=True,
        **{"fsve.cnn": "plain", "fsve.layers": [1, 1, 1]},
    )


FILES = {
    "onnx": {"visual.onnx", "text.onnx", "export.json"},
    "nir": {"visual_cnn.nir", "export.json"},
    "lava": {"visual_cnn.net", "host.onnx", "export.json"},
}


@pytest.mark.parametrize("verify", [False, True], ids=["plain", "verify"])
@pytest.mark.parametrize("fmt", ["onnx", "nir", "lava"])
def test_every_export_format_through_the_cli(fmt, verify, ann_ckpt, plain_ckpt, data, tmp_path, capsys):
    ckpt = ann_ckpt if fmt == "onnx" else plain_ckpt
    out = tmp_path / fmt
    argv = ["export", ckpt, "--format", fmt, "--out", out, "--json"]
    if verify:
        argv += ["--verify", "--data", data, "--samples", "1"]
    code, stdout, err = cli(argv, capsys)
    assert code == 0, err
    rec = json.loads(stdout)
    assert set(rec["files"]) == FILES[fmt] == {p.name for p in out.iterdir()}
    assert ("verify" in rec) == verify
    if verify and fmt != "lava":
        assert rec["verify"]["ok"]
    if verify and fmt == "lava":
        assert rec["verify"]["counts"]["agree"]
    assert json.loads((out / "export.json").read_text())["format"] == fmt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_lava_export_then_simulate_limits(plain_ckpt, data, tmp_path, capsys):
    out = tmp_path / "lava"
    assert cli(["export", plain_ckpt, "--format", "lava", "--out", out], capsys)[0] == 0
    net = out / "visual_cnn.net"
    refused(["simulate", net, "--data", data, "--steps", 10**9], capsys, "--steps 1000000000")
    code, stdout, err = cli(["simulate", net, "--data", data, "--steps", 2, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["schedule"]["per_block"] == 2
    rec = json.loads((out / "export.json").read_text())
    for key, value, needle in (
        ("time_steps", 10**12, "fsve.time_steps 1000000000000"),
        ("time_steps", "2", "config fsve.time_steps must be a positive integer"),
    ):
        bad = json.loads(json.dumps(rec))
        bad["config"]["fsve"][key] = value
        (out / "export.json").write_text(json.dumps(bad))
        refused(["simulate", net, "--data", data], capsys, needle)
    bad = json.loads(json.dumps(rec))
    bad["host"]["file"] = "../../etc/x.onnx"
    (out / "export.json").write_text(json.dumps(bad))
    refused(["simulate", net, "--data", data], capsys, "must be a file name beside the network")
    (out / "export.json").write_text(json.dumps(rec))
    (out / "host.onnx").write_bytes(b"not onnx")
    refused(["simulate", net, "--data", data], capsys, "host.onnx", "onnxruntime cannot run")


def test_export_overwrite_replaces_only_a_folder_of_export_files(ann_ckpt, tmp_path, capsys):
    """``--overwrite`` replaces an earlier export; a folder holding anything else is never replaced, and
    without ``--overwrite`` no non-empty folder is."""
    from cli_helpers import files_under

    from export.pipeline import check_out, export_files

    out = tmp_path / "o"
    out.mkdir()
    (out / "visual.onnx").write_bytes(b"an earlier export")
    (out / "export.json").write_text("{}")
    (out / "notes.txt").write_text("the user's")
    before = files_under(out)
    refused(["export", ann_ckpt, "--out", out, "--overwrite"], capsys, str(out), "'notes.txt'")
    assert files_under(out) == before
    (out / "notes.txt").unlink()
    (out / "results").mkdir()
    refused(["export", ann_ckpt, "--out", out, "--overwrite"], capsys, str(out), "'results'")
    (out / "results").rmdir()
    refused(["export", ann_ckpt, "--out", out], capsys, str(out), "--overwrite")
    assert {
        "visual.onnx",
        "text.onnx",
        "visual_cnn.nir",
        "hsfe_mtf.nir",
        "hsfe_sa_gate.nir",
        "hsfe_trunk.nir",
        "visual_cnn.net",
        "host.onnx",
        "export.json",
    } == export_files()
    assert check_out(out, overwrite=True) == out
    code, stdout, err = cli(["export", ann_ckpt, "--out", out, "--overwrite", "--json"], capsys)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"visual.onnx", "text.onnx", "export.json"}
    assert (out / "visual.onnx").read_bytes() != b"an earlier export"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--opset", "99"], "--opset 99 is not supported"),
        (["--opset", "x"], "--opset"),
        (["--samples", "0", "--verify"], "--samples"),
        (["--format", "tflite"], "tflite"),
    ],
)
def test_export_options_are_one_line(ann_ckpt, tmp_path, argv, needle, capsys):
    refused(["export", ann_ckpt, "--out", tmp_path / "o", *argv], capsys, needle)
    assert not (tmp_path / "o").exists()


def test_export_library_validates_opset_and_samples(ann_ckpt, tmp_path):
    for kwargs, needle in (
        ({"opset": "x"}, "--opset expects an integer"),
        ({"opset": 13.5}, "--opset"),
        ({"samples": 0}, "--samples must be at least 1"),
        ({"samples": "many"}, "--samples expects an integer"),
    ):
        with pytest.raises(ConfigError, match=needle):
            export_checkpoint(ann_ckpt, tmp_path / "o", **kwargs)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- fuzz: the netx reader

FIELDS = [
    "layer",
    "layer/0",
    "layer/1",
    "layer/0/shape",
    "layer/0/type",
    "layer/0/neuron",
    "layer/1/type",
    "layer/1/shape",
    "layer/1/weight",
    "layer/1/bias",
    "layer/1/stride",
    "layer/1/padding",
    "layer/1/dilation",
    "layer/1/groups",
    "layer/1/neuron",
    "layer/1/neuron/type",
    "layer/1/neuron/iDecay",
    "layer/1/neuron/vDecay",
    "layer/1/neuron/vThMant",
    "layer/1/neuron/messageBits",
    "layer/2",
    "layer/2/type",
    "layer/2/shape",
    "layer/2/weight",
    "layer/2/bias",
    "layer/3",
    "layer/x",
    "simulation/Ts",
    "simulation",
    "layer/0/weight",
    "layer/1/extra",
    "layer/1/neuron/refDelay",
    "extra",
]

numbers = st.one_of(
    st.integers(-5, 70), st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True, width=32)
)
values = st.one_of(
    numbers,
    st.lists(numbers, min_size=0, max_size=6),
    st.sampled_from([b"conv", b"dense", b"input", b"flatten", b"pool", b"CUBA", b"LOIHI", b"", "conv", "dense"]),
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 4), st.integers(1, 4)),  # a weight-like shape
)
edits = st.tuples(
    st.sampled_from(
        [
            "keep",
            "delete",
            "value",
            "dtype",
            "huge",
            "empty",
            "group",
            "soft",
            "external",
            "storage",
            "virtual",
            "zeros",
        ]
    ),
    st.sampled_from(FIELDS),
    values,
    st.sampled_from(["f4", "f8", "i1", "i8", "u2", "S4", "b1"]),
)


def _dataset(parent, name, kind: str, value, dtype: str, tmp: Path) -> None:
    if kind == "value":
        if isinstance(value, tuple):
            value = np.ones(value, np.float32)
        parent.create_dataset(name, data=value)
    elif kind == "dtype":
        arr = np.asarray(value if not isinstance(value, tuple) else np.ones(value))
        if arr.dtype.kind == "U":
            arr = arr.astype("S")
        try:
            with np.errstate(all="ignore"):
                arr = arr.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            pass
        parent.create_dataset(name, data=arr)
    elif kind == "huge":
        parent.create_dataset(name, shape=(10**6, 10**6, 4), dtype="f4", chunks=(1, 1000, 4))
    elif kind == "empty":
        parent.create_dataset(name, data=h5py.Empty("f4"))
    elif kind == "group":
        parent.create_group(name).create_dataset("x", data=1)
    elif kind == "zeros":
        parent.create_dataset(name, data=np.zeros(value if isinstance(value, tuple) else (0,), np.float32))
    elif kind == "soft":
        parent[name] = h5py.SoftLink("/layer/0/shape")
    elif kind == "external":
        parent[name] = h5py.ExternalLink(str(tmp / "other.h5"), "/x")
    elif kind == "storage":
        raw = tmp / "raw.bin"
        raw.write_bytes(b"\0" * 64)
        parent.create_dataset(name, shape=(4,), dtype="f4", external=[(str(raw), 0, 64)])
    elif kind == "virtual":
        lay = h5py.VirtualLayout(shape=(3,), dtype="f4")
        lay[:] = h5py.VirtualSource(str(tmp / "other.h5"), "x", shape=(3,))
        parent.create_virtual_dataset(name, lay)


def _fuzz_net(dense: bool) -> NetxNet:
    rng = np.random.default_rng(0)
    layers = [
        NetxLayer("input", (2, 6, 6), NetxNeuron(4096, 1024, 10)),
        NetxLayer(
            "conv",
            (3, 3, 3),
            NetxNeuron(4096, 1024, 20),
            weight=rng.integers(-9, 9, (3, 2, 3, 3)),
            bias=rng.integers(-3, 3, 3),
            stride=(2, 2),
            padding=(1, 1),
        ),
    ]
    if dense:
        layers += [
            NetxLayer("flatten", (27, 1, 1)),
            NetxLayer("dense", (4, 1, 1), NetxNeuron(4096, 1024, 20), weight=rng.integers(-9, 9, (4, 27))),
        ]
    return NetxNet(layers, attrs={"Ts": 1, "tSample": 8})


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(dense=st.booleans(), mutations=st.lists(edits, min_size=0, max_size=4))
def test_fuzz_read_netx_returns_or_raises_a_spklip_error(dense, mutations):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with h5py.File(tmp / "other.h5", "w") as h:
            h.create_dataset("x", data=np.ones(3, np.float32))
        path = write_netx(tmp / "f.net", _fuzz_net(dense))
        with h5py.File(path, "a") as h:
            for kind, field, value, dtype in mutations:
                if kind == "keep":
                    continue
                parent_name, _, name = field.rpartition("/")
                try:  # an earlier edit may have made the parent a dataset or a (looping) link: skip the edit
                    parent = h.require_group(parent_name) if parent_name else h
                    if parent.get(name, getlink=True) is not None:
                        del parent[name]
                except (TypeError, ValueError, KeyError, OSError, RuntimeError):
                    continue
                if kind != "delete":
                    _dataset(parent, name, kind, value, dtype, tmp)
        try:
            net = read_netx(path)
        except SpklipError as exc:
            assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 600
            event(f"refused: {type(exc).__name__}")
            return
        event("read")
        # what it returns is a chain the engine can size without surprises
        engine.simulation_work(net, 2, 1)
        assert engine.simulation_bytes(net, 2, 1) > 0
        assert all(len(lay.shape) == 3 for lay in net.layers if lay.type in ("input", "conv"))
        assert math.prod(net.input_shape) >= 1


def test_fuzz_unusual_files(tmp_path):
    """Hand-made cases the mutations above do not reach: no layer group, a file that is not HDF5, a layer
    group that is a dataset, numbered layers with a gap, and one with a million layer names."""
    cases = {
        "empty": lambda h: None,
        "layer-dataset": lambda h: h.create_dataset("layer", data=1),
        "gap": lambda h: [h.create_group(f"layer/{i}") for i in (0, 2)],
        "many": lambda h: [h.create_group(f"layer/n{i}") for i in range(2000)],
        "odd-name": lambda h: h.create_group("layer/0").__setitem__("a\nb", h5py.SoftLink("/x\ny" * 99)),
    }
    for name, build in cases.items():
        with h5py.File(tmp_path / f"{name}.net", "w") as h:
            build(h)
        with pytest.raises(ConfigError) as info:
            read_netx(tmp_path / f"{name}.net")
        assert len(str(info.value)) < 600 and "\n" not in str(info.value), name
    (tmp_path / "text.net").write_text("layer 0 input")
    with pytest.raises(ConfigError, match="not an HDF5 file"):
        read_netx(tmp_path / "text.net")
