#!/usr/bin/env bash
# Throughput of shmxfer beside dd bs=4096, a cat|cat pipe and cp, in one run on
# one machine, and many small files beside cp. Prints figures and ratios; it
# asserts nothing (shared machines are noisy: compare ratios, not seconds).
#   usage: scripts/bench.sh [SIZE_MIB] [RUNS]        (defaults: 256 3)
#   BENCH_SWEEP=1 also tries ring sizes (--slots) and spin budgets (SHMXFER_SPIN_US).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${2:-3}
cargo build --release --locked --quiet
bin=$PWD/target/release
work=$(mktemp -d "$PWD/target/bench.XXXXXX")
queue="/shmxfer_bench_$$"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/root/small" "$work/out"
head -c $((size_mib * 1048576)) /dev/urandom > "$work/root/big.bin"
for i in $(seq -w 1 1000); do head -c 4096 /dev/urandom > "$work/root/small/f$i"; done
cat "$work/root/big.bin" > /dev/null # into the page cache

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
best() { # best of $runs runs of "$@", in seconds; the output file is removed first
  local b="" t0 t1 d
  for _ in $(seq "$runs"); do
    rm -rf "$work/out" && mkdir -p "$work/out"
    sync
    t0=$(now); "$@"; t1=$(now)
    d=$(calc "$t1 - $t0")
    if [ -z "$b" ] || [ "$(calc "($d < $b)")" = 1 ]; then b=$d; fi
  done
  echo "$b"
}
start_server() {
  SHMXFER_SPIN_US=${1:-200} "$bin/shm_server" --queue "$queue" --root "$work/root" --persistent -q &
  server=$!
  while [ ! -e "/dev/shm/${queue#/}.lock" ]; do sleep 0.01; done
}
stop_server() {
  "$bin/shm_client" --queue "$queue" --stop-server -q
  wait "$server" || true
  server=""
}

fetch_big() { "$bin/shm_client" --queue "$queue" -q -o "$work/out" "$@" big.bin; }
t_dd=$(best dd if="$work/root/big.bin" of="$work/out/big.bin" bs=4096 status=none)
t_pipe=$(best sh -c "cat '$work/root/big.bin' | cat > '$work/out/big.bin'")
t_cp=$(best cp "$work/root/big.bin" "$work/out/big.bin")
start_server 200
t_shm=$(best fetch_big)
cmp "$work/root/big.bin" "$work/out/big.bin"

row() { printf '%-34s %8.3f s %8.0f MB/s %6.2fx dd\n' "$1" "$2" "$(calc "$size_mib * 1.048576 / $2")" "$(calc "$t_dd / $2")"; }
echo "one ${size_mib} MiB file, page cache -> $(df --output=fstype "$work" | tail -1) ($(nproc) cores, best of $runs)"
row "dd bs=4096" "$t_dd"
row "cat | cat" "$t_pipe"
row "cp" "$t_cp"
row "shmxfer (default ring)" "$t_shm"

if [ "${BENCH_SWEEP:-0}" = 1 ]; then
  stop_server
  for spin in 0 10 50 200; do
    start_server "$spin"
    for slots in 1 2 4; do
      t=$(SHMXFER_SPIN_US=$spin best fetch_big --slots "$slots")
      row "shmxfer slots=$slots spin=${spin}us" "$t"
    done
    stop_server
  done
  start_server 200
fi

mapfile -t small < <(cd "$work/root" && ls small | sed 's|^|small/|')
t_cps=$(best cp -r "$work/root/small" "$work/out/small")
t_shms=$(best "$bin/shm_client" --queue "$queue" -q -o "$work/out" "${small[@]}")
printf '1000 files of 4 KiB: cp -r %.3f s, shmxfer %.3f s (%.2fx cp)\n' "$t_cps" "$t_shms" "$(calc "$t_cps / $t_shms")"
stop_server
