#!/usr/bin/env bash
# Download, here, the wheels that the device image lacks (Python 3.12, x86-64) into tools/gpu/wheels
# (git-ignored; the device call carries it). Versions are the ones the checked onepass is tested with.
# About 15 MB; with the working tree (~30 MB) well under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
mkdir -p wheels
# regex: transformers checks its version (>= 2025.10.22) at import, and the image's is not known
for pkg in transformers==5.23.0 regex==2026.12.2 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d wheels "$pkg"
done
ls -la wheels
du -sh wheels
