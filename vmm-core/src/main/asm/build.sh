#!/usr/bin/env bash
# Assembles the demo guest programs (*.S, GNU as, Intel syntax) into flat binaries in $1.
# Each is linked at address 0: real-mode programs run with CS based at their load address,
# long-mode ones use RIP-relative addressing only.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
out=$1
for tool in as ld; do
    command -v "$tool" >/dev/null || { echo "building the demo guests needs GNU $tool: apt-get install binutils" >&2; exit 1; }
done
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$src"/*.S; do
    name=$(basename "$f" .S)
    as --64 -I "$src" -o "$tmp/$name.o" "$f"
    ld -m elf_x86_64 -Ttext=0 -e 0 --oformat binary -o "$out/$name.bin" "$tmp/$name.o"
done
