"""Deployment exports of SPKLIP checkpoints.

Formats (:data:`.formats.FORMATS`): ONNX (``docs/export.md``), NIR (``docs/nir.md``) and Lava netx
(``docs/lava.md``), each verifiable against the torch model; ``simulate`` runs a netx file on the
fixed-point CUBA-LIF engine. Importing the package loads no exporter until one is used.
"""

from .formats import FORMATS


def __getattr__(name: str):
    if name == "export_checkpoint":  # the pipeline loads torch and the checkpoint readers
        from .pipeline import export_checkpoint

        return export_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FORMATS", "export_checkpoint"]
