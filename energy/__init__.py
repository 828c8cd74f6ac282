"""Operation counting by hooks (MACs, SOPs, neuron updates, memory accesses) and cost models (planned)."""
