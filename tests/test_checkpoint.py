"""Tests of the checkpoint format: round trips, atomic writes, refusal of unsafe or foreign files."""

from __future__ import annotations

import functools
import io
import json
import os
import pathlib
import pickle
import tempfile
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spklip_energy.checkpoint import FORMAT, Checkpoint, load_checkpoint, save_checkpoint
from spklip_energy.errors import CheckpointError, SpklipError

FORMS = [".pt", ".safetensors"]
CARD = {
    "kind": "test-ann-cnn",
    "config": {"timesteps": 4, "height": 64},
    "train": {"epochs": 3, "lr": 1e-3, "note": "ünïcödé"},
    "eval": {"accuracy": 0.75, "per_class": [0.5, 1.0], "best": None},
}


def small_state_dict() -> dict[str, torch.Tensor]:
    """Tensors of several dtypes and shapes, including a scalar and an empty one."""
    g = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 2, 3, 3, generator=g),
        "conv.bias": torch.randn(4, generator=g).half(),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "mask": torch.rand(5, 5, generator=g) > 0.5,
        "table": torch.arange(12, dtype=torch.int32).reshape(3, 4),
        "scale": torch.tensor(0.5, dtype=torch.bfloat16),
        "empty": torch.zeros(0, 3),
    }


def check_same_tensors(expected: dict, found: dict) -> None:
    assert list(sorted(found)) == list(sorted(expected)), f"expected keys {sorted(expected)}, found {sorted(found)}"
    for key, want in expected.items():
        got = found[key]
        assert got.dtype == want.dtype, f"{key}: expected dtype {want.dtype}, found {got.dtype}"
        assert got.shape == want.shape, f"{key}: expected shape {want.shape}, found {got.shape}"
        assert torch.equal(got, want), f"{key}: values differ"
        assert got.device.type == "cpu", f"{key}: expected a CPU tensor, found {got.device}"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", FORMS)
def test_round_trip_keeps_card_tensors_and_dtypes(tmp_path, suffix):
    sd = small_state_dict()
    path = tmp_path / f"model{suffix}"
    returned = save_checkpoint(path, sd, CARD)
    assert returned == path
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.card == CARD
    assert ckpt.kind == "test-ann-cnn"
    assert ckpt.config == CARD["config"]
    assert ckpt.path == path
    check_same_tensors(sd, ckpt.state_dict)
    assert files_in(tmp_path) == [path.name], "no temporary file may remain"


@pytest.mark.parametrize("suffix", FORMS)
def test_round_trip_from_module_then_load_state_dict_strict(tmp_path, suffix):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    model(torch.randn(5, 3))  # move the BN running statistics off their defaults
    path = save_checkpoint(tmp_path / f"m{suffix}", model, {"kind": "mlp"})
    ckpt = load_checkpoint(path)
    assert ckpt.config == {}, "a card without config reads as an empty config"
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    fresh.load_state_dict(ckpt.state_dict, strict=True)
    check_same_tensors(model.state_dict(), fresh.state_dict())


@pytest.mark.parametrize("suffix", FORMS)
def test_views_shared_storage_and_grad_tensors_save_cleanly(tmp_path, suffix):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    weight = torch.nn.Parameter(torch.randn(3, 3))
    sd = {
        "base": base,
        "row": base[1],  # a view into base's storage
        "transposed": base.t(),  # non-contiguous
        "tail": base.reshape(-1)[5:],  # storage offset
        "tied": base,  # the very same tensor twice
        "param": weight,  # requires grad
    }
    path = save_checkpoint(tmp_path / f"shared{suffix}", sd, {"kind": "x"})
    ckpt = load_checkpoint(path)
    check_same_tensors({k: v.detach() for k, v in sd.items()}, ckpt.state_dict)
    loaded = ckpt.state_dict
    assert not loaded["param"].requires_grad
    loaded["row"].fill_(-1)  # loaded tensors are writable and independent
    assert torch.equal(loaded["base"], base), "loaded tensors must not share storage"


def test_safetensors_tensors_survive_the_file_changing(tmp_path):
    """The file is read into memory, not mapped: truncating it later cannot crash the process."""
    path = save_checkpoint(tmp_path / "m.safetensors", small_state_dict(), CARD)
    ckpt = load_checkpoint(path)
    path.write_bytes(b"")
    check_same_tensors(small_state_dict(), ckpt.state_dict)


@pytest.mark.parametrize("suffix", FORMS)
def test_save_overwrites_an_existing_checkpoint(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    save_checkpoint(path, {"a": torch.zeros(2)}, {"kind": "old"})
    save_checkpoint(path, {"b": torch.ones(3)}, {"kind": "new"})
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "new" and list(ckpt.state_dict) == ["b"]
    assert files_in(tmp_path) == [path.name]


# --------------------------------------------------------------------------- saving errors


@pytest.mark.parametrize(
    "card,words",
    [
        ({"config": {}}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": 3}, "kind"),
        (["kind", "x"], "dict"),
        ({"kind": "x", "config": [1]}, "'config'"),
        ({"kind": "x", "extra": {1, 2}}, "JSON"),
        ({"kind": "x", "tensor": torch.zeros(1)}, "JSON"),
    ],
)
def test_save_rejects_bad_cards(tmp_path, card, words):
    with pytest.raises(CheckpointError, match=words):
        save_checkpoint(tmp_path / "m.pt", small_state_dict(), card)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    "state,words",
    [
        ({"a": 1.0}, "not a tensor"),
        ({1: torch.zeros(1)}, "not a string"),
        ("weights", "state dict"),
        ({"s": torch.zeros(3, 3).to_sparse()}, "dense"),
    ],
)
def test_save_rejects_bad_state_dicts(tmp_path, state, words):
    with pytest.raises(CheckpointError, match=words):
        save_checkpoint(tmp_path / "m.safetensors", state, {"kind": "x"})
    assert files_in(tmp_path) == []


def test_save_into_a_path_under_a_file_is_a_checkpoint_error(tmp_path):
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(tmp_path / "plain" / "m.pt", small_state_dict(), CARD)


# --------------------------------------------------------------------------- atomic writes


def _half_write_then_fail(*args, **kwargs):
    """Stands in for torch.save / safetensors' save_file: writes part of a file, then fails."""
    target = args[1] if len(args) > 1 else kwargs.get("filename") or kwargs.get("f")
    Path(target).write_bytes(b"PK\x03\x04 half a checkpoint")
    raise RuntimeError("disk full (simulated)")


@pytest.mark.parametrize("suffix", FORMS)
@pytest.mark.parametrize("existing", [False, True])
def test_failing_save_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, suffix, existing):
    path = tmp_path / f"m{suffix}"
    if existing:
        save_checkpoint(path, {"old": torch.ones(2)}, {"kind": "old"})
    before = path.read_bytes() if existing else None
    monkeypatch.setattr(torch, "save", _half_write_then_fail)
    monkeypatch.setattr(safetensors.torch, "save_file", _half_write_then_fail)

    with pytest.raises(RuntimeError, match="simulated"):
        save_checkpoint(path, small_state_dict(), CARD)

    monkeypatch.undo()
    if existing:
        assert files_in(tmp_path) == [path.name], "only the old checkpoint may remain"
        assert path.read_bytes() == before, "the existing checkpoint was modified"
        assert load_checkpoint(path).kind == "old"
    else:
        assert files_in(tmp_path) == [], "a failed save left a file behind"


# --------------------------------------------------------------------------- unsafe pickles


class TouchPayload:
    """Unpickling this runs ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class SystemPayload:
    """Unpickling this runs ``os.system("touch marker")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class PlainObject:
    """An arbitrary class instance: harmless here, but loading it needs the class's code."""


def _plain_pickle(payload, path: Path) -> None:
    path.write_bytes(pickle.dumps(payload))  # default protocol (5): STACK_GLOBAL opcodes


def _protocol2_pickle(payload, path: Path) -> None:
    path.write_bytes(pickle.dumps(payload, protocol=2))  # GLOBAL opcodes, as torch.save writes


def _torch_saved_state_dict(payload, path: Path) -> None:
    torch.save({"weight": torch.zeros(2), "hook": payload}, path)


def _checkpoint_shaped(payload, path: Path) -> None:
    """A file that looks like ours in every way but hides a payload among the tensors."""
    torch.save(
        {
            "format": FORMAT,
            "version": 1,
            "card": json.dumps({"kind": "x"}),
            "state_dict": {"w": torch.zeros(1), "evil": payload},
        },
        path,
    )


WRITERS = [_plain_pickle, _protocol2_pickle, _torch_saved_state_dict, _checkpoint_shaped]
PAYLOADS = [TouchPayload, SystemPayload]


@pytest.mark.parametrize("payload_type", PAYLOADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("writer", WRITERS, ids=lambda f: f.__name__.strip("_"))
def test_malicious_pickle_is_refused_without_running(tmp_path, writer, payload_type):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    writer(payload_type(marker), path)

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "refused" in message and "could run code" in message, message
    assert str(path) in message, f"the message must name the file: {message}"
    assert not marker.exists(), "loading ran code from the checkpoint"

    # Control: the payload is live, so the refusal above is what kept the marker away.
    if writer is _plain_pickle or writer is _protocol2_pickle:
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists(), "the test payload did not work; the test proves nothing"


@pytest.mark.parametrize("writer", WRITERS, ids=lambda f: f.__name__.strip("_"))
def test_pickled_class_instance_is_refused(tmp_path, writer):
    path = tmp_path / "object.pt"
    writer(PlainObject(), path)
    with pytest.raises(CheckpointError, match="refused because it contains pickled objects"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- foreign and broken files


def test_plain_torch_state_dict_is_foreign(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(torch.nn.Conv2d(1, 2, 3).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "not a spklip-energy checkpoint" in message, message
    assert "'weight'" in message and "'bias'" in message, f"found keys should be named: {message}"
    assert str(path) in message


def test_foreign_dict_with_many_keys_is_summarised(tmp_path):
    path = tmp_path / "many.pt"
    torch.save({f"layer{i}.weight": torch.zeros(1) for i in range(50)}, path)
    with pytest.raises(CheckpointError, match=r"50 keys") as info:
        load_checkpoint(path)
    assert len(str(info.value)) < 300, "the message must stay one short sentence"


@pytest.mark.parametrize(
    "obj,words", [([1, 2], "found a list"), (torch.zeros(3), "found a Tensor"), ({}, "empty dict")]
)
def test_foreign_torch_objects(tmp_path, obj, words):
    path = tmp_path / "thing.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(path)


def test_plain_safetensors_file_is_foreign(tmp_path):
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path), metadata={"author": "someone"})
    with pytest.raises(CheckpointError, match="not a spklip-energy checkpoint.*'author'"):
        load_checkpoint(path)


def _torch_payload(path: Path, **changes) -> None:
    payload = {
        "format": FORMAT,
        "version": 1,
        "card": json.dumps({"kind": "x"}),
        "state_dict": {"w": torch.zeros(2)},
    }
    payload.update(changes)
    torch.save(payload, path)


def _safetensors_payload(path: Path, **changes) -> None:
    metadata = {"format": FORMAT, "version": "1", "card": json.dumps({"kind": "x"})}
    metadata.update(changes)
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"version": 2}, r"version '?2"),
        ({"version": "1.5"}, "version '1.5'"),
        ({"card": "{not json"}, "not valid JSON"),
        ({"card": "[1, 2]"}, "JSON list, not an object"),
        ({"card": json.dumps({"config": {}})}, "without a non-empty string 'kind'"),
        ({"card": json.dumps({"kind": "x", "config": [1]})}, "'config' is not an object"),
    ],
)
@pytest.mark.parametrize("suffix", FORMS)
def test_malformed_checkpoints(tmp_path, suffix, changes, words):
    path = tmp_path / f"bad{suffix}"
    if suffix == ".pt":
        _torch_payload(path, **changes)
    else:
        _safetensors_payload(path, **{k: str(v) for k, v in changes.items()})
    with pytest.raises(CheckpointError, match=words) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"state_dict": {"w": 1.5}}, "not a tensor"),
        ({"state_dict": [torch.zeros(1)]}, "no state_dict dict"),
        ({"state_dict": {3: torch.zeros(1)}}, "non-string state_dict key"),
        ({"card": None}, "no card"),
    ],
)
def test_malformed_torch_payloads(tmp_path, changes, words):
    path = tmp_path / "bad.pt"
    _torch_payload(path, **changes)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(path)


def test_missing_directory_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path / "folder.pt")
    for name in ("empty.pt", "empty.safetensors"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(CheckpointError, match="is empty"):
            load_checkpoint(tmp_path / name)


@pytest.mark.parametrize("suffix", FORMS)
@pytest.mark.parametrize("keep", [1, 7, 8, 30, 0.5, 0.99])
def test_truncated_checkpoints(tmp_path, suffix, keep):
    data = valid_bytes(suffix)
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_text_file_is_corrupt(tmp_path):
    for name in ("notes.pt", "notes.safetensors"):
        (tmp_path / name).write_text("these are not the weights you are looking for\n")
        with pytest.raises(CheckpointError, match=f"{name} is truncated or corrupt"):
            load_checkpoint(tmp_path / name)


def test_checkpoint_error_is_a_spklip_error():
    assert issubclass(CheckpointError, SpklipError)


# --------------------------------------------------------------------------- fuzzing


@functools.cache
def valid_bytes(suffix: str) -> bytes:
    """The bytes of a small valid checkpoint in the given form."""
    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(Path(folder) / f"seed{suffix}", small_state_dict(), CARD)
        return path.read_bytes()


@st.composite
def damaged_checkpoints(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(FORMS))
    data = bytearray(valid_bytes(suffix))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "garbage", "truncate", "append"]))
        if not data:
            break
        if op == "flip":
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "garbage":
            pos = draw(st.integers(0, len(data) - 1))
            junk = draw(st.binary(min_size=1, max_size=32))
            data[pos : pos + len(junk)] = junk
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data) - 1))]
        else:
            data += draw(st.binary(min_size=1, max_size=64))
    return suffix, bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_checkpoints())
def test_damaged_files_load_or_raise_checkpoint_error(damaged):
    suffix, data = damaged
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            assert str(path) in str(exc), f"the message must name the file: {exc}"
            assert "\n" not in str(exc), f"the message must be one line: {exc!r}"
        else:
            assert isinstance(ckpt, Checkpoint)
            assert isinstance(ckpt.card, dict) and isinstance(ckpt.kind, str) and ckpt.kind
            assert all(isinstance(v, torch.Tensor) for v in ckpt.state_dict.values())


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=512), st.sampled_from(FORMS))
def test_random_bytes_never_escape_as_other_errors(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"noise{suffix}"
        path.write_bytes(data)
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


def test_valid_bytes_load_through_torch_weights_only():
    """Sanity check of the fixture: the valid bytes load through torch with weights_only."""
    obj = torch.load(io.BytesIO(valid_bytes(".pt")), weights_only=True)
    assert obj["format"] == FORMAT and json.loads(obj["card"]) == CARD


def test_other_format_marker_is_named(tmp_path):
    path = tmp_path / "other.pt"
    _torch_payload(path, format="someone-elses-format")
    with pytest.raises(CheckpointError, match="format marker is 'someone-elses-format'"):
        load_checkpoint(path)
