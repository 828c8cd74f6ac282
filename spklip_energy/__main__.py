"""``python -m spklip_energy VERB ...`` (and ``torchrun ... -m spklip_energy eval ...``): the CLI."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
