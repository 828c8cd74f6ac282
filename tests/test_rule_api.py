"""The public API for writing counting rules (energy/rules.py): conventions, helpers, scratch, the docs example."""

from __future__ import annotations

import ast
import inspect
import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import torch
import torch.nn as nn

import energy.rules as rules
from energy import Profiler, RuleEntry, profile
from energy.counts import Counts
from energy.rules import (
    CONVENTIONS,
    CallContext,
    adaptive_coverage,
    conv_coverage,
    conv_key,
    first_tensor,
    no_reuse_weights,
    per_sample,
    pool_coverage,
    pool_key,
    record_spike_rate,
    select,
    spatial_dims,
    tensor_bytes,
    tensors,
    whole_sample,
)
from spklip_energy.analysis import conventions

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spklip_energy", "spikedata", "spklip", "fsve", "convert", "energy", "export", "reports")

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- conventions


def test_reports_print_the_conventions_constant():
    assert tuple(conventions()) == CONVENTIONS


def test_conventions_content():
    assert isinstance(CONVENTIONS, tuple) and len(CONVENTIONS) == 8
    for c in CONVENTIONS:
        assert isinstance(c, str) and c == c.strip() and c.endswith("."), c
        assert "**" not in c and "``" not in c and "  " not in c, f"reST markup or double space in {c!r}"
    first, conv, dense, *_, memory, inline = CONVENTIONS
    assert first.startswith("A layer's input counts as binary spikes when its producer is a spiking neuron")
    assert conv.startswith("Convolution on spikes: SOPs =") and "exact at the borders" in conv
    assert dense.startswith("Dense MACs: output elements x fan-in.")
    assert 'reuse="layer"' in memory and 'reuse="none"' in memory and memory.startswith("Memory (32-bit words)")
    assert inline.endswith("is not visible to module hooks and is not counted.")


def test_module_docstring_lists_every_convention():
    if rules.__doc__ is None:  # python -OO
        pytest.skip("docstrings stripped")
    doc = " ".join(rules.__doc__.split())
    assert "CONVENTIONS" in doc
    for c in CONVENTIONS:
        assert "* " + c in doc, c


# --------------------------------------------------------------------------- the public API


def test_public_names_exist_and_are_documented():
    assert rules.__all__ == sorted(rules.__all__, key=lambda n: (not n.isupper(), n))  # constants first, sorted
    for name in rules.__all__:
        assert not name.startswith("_"), name
        obj = getattr(rules, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"energy.rules.{name} has no docstring"


def _rules_imports(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every name ``path`` takes from energy.rules (imports and ``rules.<name>`` access)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_energy = path.parent.name == "energy"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod == "energy.rules" or (in_energy and node.level == 1 and mod == "rules"):
                found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "rules":
            found.append((node.lineno, node.attr))
    return found


def test_no_private_helper_of_the_rules_module_is_used_elsewhere():
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    files += [*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    bad = []
    for path in files:
        if path == ROOT / "energy" / "rules.py":
            continue
        for line, name in _rules_imports(path):
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                bad.append(f"{path.relative_to(ROOT)}:{line} {name}")
    assert not bad, "private names of energy.rules used outside it: " + ", ".join(bad)


# --------------------------------------------------------------------------- helpers, by hand


def test_select_keeps_bools_as_is_and_tensors_on_the_device():
    assert select(True, 3, 4) == 3 and select(False, 3, 4) == 4
    t = select(torch.tensor(True), 3, 4)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64 and t.item() == 3
    assert select(torch.tensor(False), torch.tensor(7), 0).item() == 0


def test_record_spike_rate_is_nan_for_real_inputs():
    x = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    c = Counts()
    record_spike_rate(c, x, True, 3)
    assert (c.in_numel, c.in_nnz) == (5, 3)
    c = Counts()
    record_spike_rate(c, x, False, 3)
    assert c.in_numel == 5 and math.isnan(c.in_nnz)


def test_conv_coverage_by_hand():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    cov = conv_coverage(conv, (4, 4), "cpu")
    expected = torch.tensor([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]], dtype=torch.float64)
    assert torch.equal(cov, expected)
    strided = conv_coverage(nn.Conv2d(1, 1, 2, stride=2), (4, 4), "cpu")
    assert torch.equal(strided, torch.ones(4, 4, dtype=torch.float64))
    assert conv_key(conv, (4, 4), "cpu") == conv_key(nn.Conv2d(3, 8, 3, padding=1), (4, 4), "cpu")
    assert conv_key(conv, (4, 4), "cpu") != conv_key(nn.Conv2d(1, 1, 3, padding=2), (4, 4), "cpu")


def test_pool_coverage_by_hand():
    assert torch.equal(pool_coverage(nn.AvgPool2d(2), (4, 4), "cpu"), torch.ones(4, 4, dtype=torch.float64))
    overlap = pool_coverage(nn.AvgPool1d(3, stride=1), (5,), "cpu")
    assert overlap.tolist() == [1, 2, 3, 2, 1]
    assert adaptive_coverage(1, (3, 2), "cpu").tolist() == [[1, 1], [1, 1], [1, 1]]
    assert adaptive_coverage((2,), (3,), "cpu").tolist() == [1, 2, 1]  # windows [0, 2) and [1, 3)
    a, b = nn.AvgPool2d(2), nn.AvgPool2d(2, ceil_mode=True)
    assert pool_key(a, (4, 4), "cpu") != pool_key(b, (4, 4), "cpu")


def test_shape_and_tensor_helpers():
    x = torch.zeros(2, 3, 4, 5)
    assert per_sample(x, 3) == 60 and per_sample(x, 1) == 5 and per_sample(x, 0) == x.numel()
    assert tensor_bytes(x) == x.numel() * 4 and tensor_bytes(x.double()) == x.numel() * 8
    row = x[0]
    assert [id(t) for t in tensors((1, x, "a", row))] == [id(x), id(row)]
    assert first_tensor(x) is x and first_tensor(("s", x)) is x and first_tensor((1, 2)) is None
    assert whole_sample(nn.Identity(), (x,)) == 3 and whole_sample(nn.Identity(), ()) == 1
    assert spatial_dims(nn.AvgPool3d(2)) == 3 and spatial_dims(nn.BatchNorm1d(2)) == 1
    with pytest.raises(TypeError):
        spatial_dims(nn.Linear(2, 2))


def test_no_reuse_weights_reads_one_weight_per_operation():
    lin = nn.Linear(4, 3)
    c = Counts(macs=12, sops=5)
    no_reuse_weights(c, lin, torch.zeros(2, 3))
    assert c.weight_reads == 12 + 5 + 6 and c.weight_read_bytes == 4 * (12 + 5 + 6)


# --------------------------------------------------------------------------- the scratch space


class _Tick(nn.Module):
    def forward(self, x):
        return x + 0


def _tick_rule(module, inputs, output, ctx: CallContext) -> Counts:
    """Numbers its calls within one profile in the scratch space (one add per element)."""
    seen = ctx.scratch.setdefault("tests.tick", [])
    seen.append(len(seen))
    return Counts(macs=inputs[0].numel())


def test_scratch_is_typed_empty_and_per_profile():
    assert get_type_hints(CallContext)["scratch"] == dict[str, Any]
    a, b = CallContext(), CallContext()
    assert a.scratch == {} and a.scratch is not b.scratch
    model = nn.Sequential(_Tick(), _Tick(), _Tick())
    extra = {_Tick: RuleEntry(_tick_rule)}
    x = torch.ones(2, 3)
    with Profiler(model, extra_rules=extra) as prof:
        model(x)
        model(x)
    assert prof.ctx.scratch == {"tests.tick": list(range(6))}
    assert prof.result().totals["macs"] == 6 * x.numel()
    with Profiler(model, extra_rules=extra) as again:
        model(x)
    assert again.ctx.scratch == {"tests.tick": [0, 1, 2]}, "scratch state leaked from one profile into the next"


def test_converted_rules_keep_their_events_in_scratch_only():
    from convert import convert_module

    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 1)).eval()
    x = torch.randn(4, 2, 8, 8)
    snn = convert_module(cnn, [x], timesteps=4)
    with Profiler(snn) as prof, torch.no_grad():
        snn(x)
    declared = {f.name for f in fields(CallContext)}
    assert set(vars(prof.ctx)) == declared, f"state stashed on the context: {set(vars(prof.ctx)) - declared}"
    assert set(prof.ctx.scratch) == {"convert.events"}
    assert prof.result().totals["sops"] > 0


# --------------------------------------------------------------------------- the documented example


def _docs_example() -> str:
    text = (ROOT / "docs" / "energy.md").read_text(encoding="utf-8")
    section = text.split("## Writing a counting rule", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "docs/energy.md 'Writing a counting rule' has no python example"
    return blocks[-1]


def test_docs_example_runs_and_counts():
    ns: dict = {"__name__": "docs_energy_example"}
    exec(compile(_docs_example(), "docs/energy.md", "exec"), ns)  # its own assert checks the spike case
    gain, layer = ns["ChannelGain"], ns["ChannelGain"](4)
    assert rules.RULES[gain].fn is ns["channel_gain_rule"]
    dense = profile(layer, torch.randn(2, 4, 8, 8))
    assert dense.totals["macs"] == 2 * 4 * 8 * 8 and dense.totals["sops"] == 0 and dense.not_counted == []
    spikes = (torch.rand(2, 4, 8, 8) < 0.3).float()
    bound = profile(layer, spikes, reuse="none")
    assert bound.totals["sops"] == int(spikes.sum()) and bound.totals["weight_reads"] == int(spikes.sum())
