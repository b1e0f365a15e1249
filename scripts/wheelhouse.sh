#!/usr/bin/env bash
# The wheels a GPU server without network needs to run loes (`make wheelhouse`): the packages
# of scripts/wheelhouse-requirements.txt, binary wheels for CPython PYTHON_VERSION on
# manylinux x86-64, and loes itself as a wheel, into DIR; never torch (the server's own CUDA
# build stays). Prints each wheel's size and the total. Copy DIR with the checkout to the
# server and run benchmarks/gpu_check.sh there.
#
#   scripts/wheelhouse.sh [PYTHON_VERSION [DIR]]     (defaults: 3.12, wheelhouse)
#
# PYTHON (default python3) is the Python that runs pip here; it need not be PYTHON_VERSION.
# DIR gets requirements.txt (what gpu_check.sh installs, exactly) and python-version.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
out="${2:-wheelhouse}"
python="${PYTHON:-python3}"
if [[ ! "$version" =~ ^3\.[0-9]+$ ]]; then
    echo "wheelhouse: PYTHON_VERSION must be like 3.12, got '$version'" >&2
    exit 2
fi

# pip matches each manylinux tag exactly: glibc 2.17 (manylinux2014) up to 2.39, newest first
platforms=()
for n in $(seq 39 -1 17); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)

# pip's notes on this machine's local indexes that lack a package are no failure
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

rm -rf "$out"
mkdir -p "$out"
# the list for that Python: pip download evaluates markers for the Python running it, not
# for --python-version, so they are evaluated here (with pip's own copy of packaging)
"$python" -c '
import sys
from pip._vendor.packaging.requirements import Requirement

version, path = sys.argv[1:]
for line in open(path):
    line = line.split("#")[0].strip()
    if line:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"python_version": version}):
            req.marker = None
            print(req)
' "$version" scripts/wheelhouse-requirements.txt >"$out/requirements.txt"
# --no-deps: the list names every package to bring; what the server has stays out
quiet "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$version" --implementation cp "${platforms[@]}" \
    -r "$out/requirements.txt" -d "$out"
quiet "$python" -m pip wheel --quiet --no-deps . -w "$out"
if compgen -G "$out/torch-*" >/dev/null; then
    echo "wheelhouse: a torch wheel came along; the server's own CUDA build must stay" >&2
    exit 1
fi
loes_wheel=$(cd "$out" && ls loes-*.whl)
echo "loes==$(echo "$loes_wheel" | cut -d- -f2)" >>"$out/requirements.txt"
echo "$version" >"$out/python-version"

echo "wheelhouse for CPython $version (manylinux x86-64) in $out/:"
for wheel in "$out"/*.whl; do
    printf '  %6.1f MB  %s\n' "$(($(stat -c %s "$wheel") / 100000))e-1" "${wheel##*/}"
done
wheels=("$out"/*.whl)
total=$(cat "${wheels[@]}" | wc -c)
printf 'total: %d wheels, %.1f MB (%.1f MiB)\n' "${#wheels[@]}" \
    "$((total / 100000))e-1" "$((total / 104858))e-1"
