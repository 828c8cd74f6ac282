"""fsve.neurons.NeuronSpec: the one description of a neuron's dynamics the exporters translate."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from spikingjelly.activation_based import functional, neuron

from convert.neurons import ConvertedIF
from fsve.neurons import FSVE_NEURONS, describe_neuron, make_lif, make_neuron
from spklip.config import preset_config, validate
from spklip_energy.errors import ConfigError


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.8


MULTI_STEP = [
    make_lif(0.5, 0.25),
    make_lif(0.3, 0.6),
    neuron.LIFNode(tau=3.0, decay_input=True, v_threshold=0.4, v_reset=-0.1, step_mode="m"),
    neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=0.7, v_reset=None, step_mode="m"),
    neuron.IFNode(v_threshold=0.3, v_reset=0.0, step_mode="m"),
    neuron.IFNode(v_threshold=0.6, v_reset=None, step_mode="m"),
]


@pytest.mark.parametrize("node", MULTI_STEP, ids=lambda n: f"{type(n).__name__}")
def test_run_replays_spikingjelly_to_the_bit(node):
    x = _x(7, 3, 11)
    node.store_v_seq = True
    functional.reset_net(node)
    want = node(x)
    spikes, h = describe_neuron(node).run(x)
    assert torch.equal(spikes, want)
    assert spikes.sum() > 0 and (spikes == 0).sum() > 0  # the inputs exercise both firing and silence
    # the last step's pre-reset potential: spikingjelly keeps v after the reset, so rebuild it
    spec = describe_neuron(node)
    v_after = torch.where(spikes[-1].bool(), torch.full_like(h[-1], spec.v_reset or 0.0), h[-1])
    if spec.v_reset is None:
        v_after = h[-1] - spikes[-1] * spec.v_threshold
    assert torch.allclose(node.v, v_after)


def test_single_step_converted_if_with_bias_and_initial_potential():
    node = ConvertedIF(v_init=0.5, channels=3)
    node.bias.copy_(torch.tensor([0.2, -0.1, 0.05]))
    spec = describe_neuron(node)
    assert (spec.family, spec.v_reset, spec.v_init, spec.step_mode) == ("if", None, 0.5, "s")
    x = _x(6, 2, 3, 4)
    functional.reset_net(node)
    want = torch.stack([node(x[t]) for t in range(6)])
    assert torch.equal(spec.run(x)[0], want)


def test_leak_and_decay_follow_the_family():
    assert describe_neuron(make_lif(0.5, 0.25)).decay == pytest.approx(0.25)
    assert describe_neuron(make_lif(0.5, 0.25)).leaky
    assert not describe_neuron(neuron.IFNode()).leaky


def test_only_exact_library_classes_are_described():
    # LIAFNode subclasses LIFNode but emits analog values: describing it as a LIF would export wrong dynamics
    assert describe_neuron(neuron.LIAFNode(act=torch.nn.ReLU(), threshold_related=False)) is None
    assert describe_neuron(neuron.ParametricLIFNode()) is None
    assert describe_neuron(torch.nn.ReLU()) is None


def test_problems_name_what_a_target_cannot_take():
    spec = describe_neuron(neuron.LIFNode(tau=2.0, decay_input=True, v_reset=None))
    probs = spec.problems(reset_to=0.0)
    assert any("decay_input" in p for p in probs) and any("v_reset=None" in p for p in probs)
    assert describe_neuron(make_lif()).problems(reset_to=0.0, step_mode="m") == []


def test_config_names_the_neuron_and_refuses_unknown_ones():
    cfg = preset_config("tiny")
    assert cfg.fsve.neuron in FSVE_NEURONS
    node = make_neuron(cfg.fsve)
    spec = describe_neuron(node)
    assert (spec.v_threshold, spec.decay) == pytest.approx((cfg.fsve.v_threshold, cfg.fsve.decay))
    with pytest.raises(ConfigError, match=r"fsve\.neuron must be one of lif, got 'izhikevich'"):
        validate(dataclasses.replace(cfg, fsve=dataclasses.replace(cfg.fsve, neuron="izhikevich")))
