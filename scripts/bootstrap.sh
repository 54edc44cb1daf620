#!/usr/bin/env bash
# Installs the Debian packages TensAIR needs to build, test and run its demo.
# Idempotent: installs nothing when every package is present; runs `apt-get update` only when
# something is missing. Uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev python3-torch
  libopenmpi-dev openmpi-bin
  libboost-math-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  librdkafka-dev python3-confluent-kafka
  libcpp-httplib-dev
  pybind11-dev python3-dev python3-mpi4py python3-numpy python3-pytest
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  zlib1g-dev liblzma-dev xz-utils gzip
  python3-matplotlib
)
# Extra packages a caller needs (scripts/fuzz.sh: clang libclang-rt-14-dev).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "tensair: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "tensair: error: packages missing (${missing[*]}) and not root and no sudo" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
