"""Exports to ONNX, NIR and Lava netx, and the fixed-point CUBA-LIF simulator (planned)."""
