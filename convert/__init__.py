"""ANN-to-SNN conversion with threshold balancing on calibration clips (planned)."""
