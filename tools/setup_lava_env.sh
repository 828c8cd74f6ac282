#!/usr/bin/env bash
# Build the optional Lava environment (lava-nc 0.10.0 + lava-dl 0.6.0, fixed-point CPU simulator) on
# Python 3.11, with the two source patches it needs there (docs/lava.md, "Lava itself").
# Usage: tools/setup_lava_env.sh ENV_DIR   (make lava-env builds .lava-venv)
set -euo pipefail
ENV=${1:-.lava-venv}
PY=${PYTHON:-python3}
rm -rf "$ENV.tmp"
"$PY" -m venv "$ENV.tmp"
P="$ENV.tmp/bin/pip"
Q="--quiet --disable-pip-version-check"
# both declare Requires-Python <3.11 and pin numpy<2 / torch<2.4: install without their pins
"$P" install $Q --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
"$P" install $Q 'numpy<2' 'scipy<2' 'networkx<=2.8.7' 'asteval<0.10' 'h5py<4' 'opencv-python-headless<4.11' \
    matplotlib typing_extensions filelock sympy jinja2 fsspec
"$P" install $Q --no-deps 'torch==2.13.0'   # slayer imports torch; the CPU build on disk, never another one
SP=$("$ENV.tmp/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$ENV.tmp/bin/python" - "$SP" <<'PY'
import pathlib, re, sys
sp = pathlib.Path(sys.argv[1])
# patch 1: Python 3.11 rejects mutable dataclass defaults (x: ByteEncoder = ByteEncoder())
f = sp / "lava/magma/compiler/var_model.py"
s = f.read_text()
s, n = re.subn(r"^(    \w+: ByteEncoder) = ByteEncoder\(\)$", r"\1 = field(default_factory=ByteEncoder)", s, flags=re.M)
s = s.replace("from dataclasses import dataclass, InitVar\n", "from dataclasses import dataclass, InitVar, field\n")
assert n >= 1 and "InitVar, field" in s, "var_model.py patch did not apply"
f.write_text(s)
# patch 2: slayer imports object_detection, which needs torchvision (not usable beside CPU torch); netx does not
f = sp / "lava/lib/dl/slayer/__init__.py"
s = f.read_text()
old = "from . import object_detection as obd\n"
assert old in s, "slayer/__init__.py patch did not apply"
f.write_text(s.replace(old, "try:  # needs torchvision; netx does not use it\n    from . import object_detection as obd\n"
                            "except ImportError:\n    obd = None\n"))
PY
"$ENV.tmp/bin/python" -c 'from lava.lib.dl import netx; import torch, numpy; print("lava netx imports; torch", torch.__version__, "numpy", numpy.__version__)'
rm -rf "$ENV"
mv "$ENV.tmp" "$ENV"
