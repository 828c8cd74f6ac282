"""``torchrun --nproc_per_node N -m spklip_energy.train [train options]``: the ``train`` verb, one process
per rank (``spklip-energy train --nproc N`` starts it this way on one machine)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
