"""Operation counting by hooks and energy estimation.

* :func:`profile` - run a model under forward hooks; per-layer MACs, SOPs,
  neuron updates and memory accesses (:class:`ProfileResult`).
* :mod:`.rules` - the counting rules, one registry keyed by layer type
  (:func:`register_rule`).
* :mod:`.costs` - per-operation energy constants with sources, and cost presets.
"""

from .counts import Counts
from .profiler import REUSE_MODES, Profiler, ProfileResult, profile
from .rules import RULES, CallContext, RuleEntry, register_rule

__all__ = [
    "REUSE_MODES",
    "RULES",
    "CallContext",
    "Counts",
    "ProfileResult",
    "Profiler",
    "RuleEntry",
    "profile",
    "register_rule",
]
