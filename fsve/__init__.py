"""The Full-Spiking Visual Encoder (MS-ResNet with LIF/TDBN + E-SDSA) and its variants.

Planned: spiking layers, the FSVE and hybrid encoders (issue: FSVE).
"""
