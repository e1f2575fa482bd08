#!/usr/bin/env bash
# Throughput of shmxfer beside dd bs=4096, a cat|cat pipe and cp, in one run on
# one machine; many clients at once; many small files beside cp -r. Rounds are
# interleaved (dd, pipe, cp, shmxfer, dd, ...) and medians reported; the same
# file uploaded (--put) and fetched through a relay (-H, over a local remote
# shell, and over `ssh localhost` where that logs in without a password). Prints
# figures and ratios; it asserts nothing (shared machines are noisy: compare
# ratios within one run, not seconds across runs). No root, no pinning.
#   usage: scripts/bench.sh [SIZE_MIB] [RUNS]        (defaults: 256 7)
#   SIZE_MIB   the one large file; RUNS  rounds of each one-file and small-file command
#   BENCH_CLIENTS="1 2 4 8 16"  clients at once, each fetching its own file of
#   BENCH_CLIENT_MIB=64         MiB, in BENCH_CLIENT_RUNS=3 rounds per count
#   BENCH_QUEUE=/name           the queue (default /shmxfer_bench_<pid>)
#   BENCH_BIN=DIR               use shm_server and shm_client from DIR instead of building
#   BENCH_SWEEP=1 also tries ring sizes (--slots) and spin budgets (SHMXFER_SPIN_US).
#   BENCH_SSH=0 skips the ssh rows (tried only when `ssh -o BatchMode=yes localhost true` works).
#   Peak RSS and the idle server's CPU are measured where /usr/bin/time is.
#   BENCH_ONE_CORE=0 skips the one-core row (both programs, and the pipe, pinned to
#                    CPU 0 with taskset; skipped where taskset is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${2:-7}
client_counts=${BENCH_CLIENTS:-1 2 4 8 16}
client_mib=${BENCH_CLIENT_MIB:-64}
client_runs=${BENCH_CLIENT_RUNS:-3}
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$(cd "$BENCH_BIN" && pwd)
else
  cargo build --release --locked --quiet
  bin=$PWD/target/release
fi
mkdir -p target # a fresh clone with BENCH_BIN has no target/ yet
work=$(mktemp -d "$PWD/target/bench.XXXXXX")
queue=${BENCH_QUEUE:-/shmxfer_bench_$$}
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

max_clients=0
for n in $client_counts; do [ "$n" -gt "$max_clients" ] && max_clients=$n; done
mkdir -p "$work/root/small" "$work/root/clients" "$work/out" "$work/up"
# The remote shell of the relay rows: drops the host and runs the rest here.
printf '#!/bin/sh\nshift\nexec "$@"\n' > "$work/local-rsh"
chmod +x "$work/local-rsh"
head -c $((size_mib * 1048576)) /dev/urandom > "$work/root/big.bin"
for i in $(seq 1 "$max_clients"); do
  head -c $((client_mib * 1048576)) /dev/urandom > "$work/root/clients/c$i.bin"
done
for i in $(seq -w 1 1000); do head -c 4096 /dev/urandom > "$work/root/small/f$i"; done
cat "$work/root/big.bin" "$work/root/clients/"* > /dev/null # into the page cache

calc() { awk "BEGIN { print $* }"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
slowest() { sort -g | tail -1; }
fresh_out() { rm -rf "$work/out" "$work/up/big.bin" && mkdir -p "$work/out" && sync; }
timed() { # seconds taken by "$@", after a fresh output directory
  fresh_out
  local t0=$EPOCHREALTIME
  "$@"
  calc "$EPOCHREALTIME - $t0"
}
start_server() { # [SPIN_US]: the server's spin budget, default when not given
  if [ -n "${1:-}" ]; then
    SHMXFER_SPIN_US=$1 $pin "$bin/shm_server" --queue "$queue" --root "$work/root" --accept "$work/up" --persistent -q &
  else
    $pin "$bin/shm_server" --queue "$queue" --root "$work/root" --accept "$work/up" --persistent -q &
  fi
  server=$!
  while [ ! -e "/dev/shm/${queue#/}.lock" ]; do sleep 0.01; done
}
stop_server() {
  "$bin/shm_client" --queue "$queue" --stop-server -q
  wait "$server" || true
  server=""
}

echo "shmxfer benchmark: $(nproc) cores, $(df --output=fstype "$work" | tail -1), $(uptime | sed 's/.*\(load average\)/\1/')"

pin="" # a command prefix that pins what follows to one CPU (the one-core row)
fetch_big() { $pin "$bin/shm_client" --queue "$queue" -q -o "$work/out" "$@" big.bin; }
pipe() { $pin cat "$work/root/big.bin" | $pin cat > "$work/out/big.bin"; }
put_big() { "$bin/shm_client" --queue "$queue" -q --put "$work/root/big.bin"; }
relay_big() { # RSH: fetches big.bin through `RSH localhost shm_client --relay`
  "$bin/shm_client" --queue "$queue" -q -o "$work/out" -H localhost --rsh "$1" \
    --remote-client "$bin/shm_client" big.bin
}
ssh_ok=0
if [ "${BENCH_SSH:-1}" = 1 ] && ssh -o BatchMode=yes -o ConnectTimeout=3 localhost true 2> /dev/null; then
  ssh_ok=1
fi
ssh_cat() { ssh -o BatchMode=yes localhost cat "$work/root/big.bin" > "$work/out/big.bin"; }
declare -A times=()
start_server
for _ in $(seq "$runs"); do
  times[dd]+="$(timed dd if="$work/root/big.bin" of="$work/out/big.bin" bs=4096 status=none) "
  times[pipe]+="$(timed pipe) "
  times[cp]+="$(timed cp "$work/root/big.bin" "$work/out/big.bin") "
  times[shm]+="$(timed fetch_big) "
  cmp "$work/root/big.bin" "$work/out/big.bin"
  times[put]+="$(timed put_big) "
  cmp "$work/root/big.bin" "$work/up/big.bin"
  times[relay]+="$(timed relay_big "$work/local-rsh") "
  cmp "$work/root/big.bin" "$work/out/big.bin"
  if [ "$ssh_ok" = 1 ]; then
    times[ssh]+="$(timed ssh_cat) "
    times[sshrelay]+="$(timed relay_big ssh) "
    cmp "$work/root/big.bin" "$work/out/big.bin"
  fi
done
rm -f "$work/up/big.bin"
med() { tr ' ' '\n' <<< "${times[$1]}" | grep . | median; }
worst() { tr ' ' '\n' <<< "${times[$1]}" | grep . | slowest; }
t_dd=$(med dd)

row() { # LABEL SECONDS [SLOWEST]
  printf '%-34s %8.3f s %8.0f MB/s %6.2fx dd' "$1" "$2" "$(calc "$size_mib * 1.048576 / $2")" "$(calc "$t_dd / $2")"
  if [ -n "${3:-}" ]; then printf '   slowest round %.2fx median' "$(calc "$2 / $3")"; fi
  echo
}
echo
echo "one ${size_mib} MiB file, page cache -> disk (median of $runs interleaved rounds)"
row "dd bs=4096" "$t_dd" "$(worst dd)"
row "cat | cat" "$(med pipe)" "$(worst pipe)"
row "cp" "$(med cp)" "$(worst cp)"
row "shmxfer (defaults)" "$(med shm)" "$(worst shm)"
printf 'shmxfer: %.2fx cat|cat, %.2fx cp\n' "$(calc "$(med pipe) / $(med shm)")" "$(calc "$(med cp) / $(med shm)")"
echo
echo "the same file the other way and through a relay (same rounds)"
row "shmxfer --put (upload)" "$(med put)" "$(worst put)"
row "shmxfer -H, relay over a local rsh" "$(med relay)" "$(worst relay)"
printf 'upload: %.2fx the fetch (aim: >= 0.90); relay over a local rsh: %.2fx cat|cat, %.2fx the fetch\n' \
  "$(calc "$(med shm) / $(med put)")" "$(calc "$(med pipe) / $(med relay)")" "$(calc "$(med shm) / $(med relay)")"
if [ "$ssh_ok" = 1 ]; then
  row "ssh localhost cat" "$(med ssh)" "$(worst ssh)"
  row "shmxfer -H localhost (ssh)" "$(med sshrelay)" "$(worst sshrelay)"
  printf 'relay over ssh: %.2fx ssh localhost cat\n' "$(calc "$(med ssh) / $(med sshrelay)")"
else
  echo "(ssh rows skipped: ssh -o BatchMode=yes localhost does not log in here)"
fi

if [ -x /usr/bin/time ]; then
  # Peak RSS of each side (a server serving 16 sessions at once, a client
  # fetching the large file) and the idle server's CPU time over 2 s.
  stop_server
  /usr/bin/time -f %M -o "$work/server.rss" "$bin/shm_server" --queue "$queue" --root "$work/root" --persistent -q &
  timer=$!
  while [ ! -e "/dev/shm/${queue#/}.lock" ]; do sleep 0.01; done
  spid=$(pgrep -P "$timer" shm_server | head -1)
  ticks() { awk '{ print $14 + $15 }' "/proc/$spid/stat"; }
  t0=$(ticks)
  sleep 2
  idle=$(calc "($(ticks) - $t0) / $(getconf CLK_TCK) / 2 * 100")
  fresh_out
  /usr/bin/time -f %M -o "$work/client.rss" "$bin/shm_client" --queue "$queue" -q -o "$work/out" big.bin
  pids=()
  mkdir -p "$work/out"/s{1..16}
  for i in $(seq 1 16); do
    "$bin/shm_client" --queue "$queue" -q -o "$work/out/s$i" --wait 5 "clients/c$(((i - 1) % max_clients + 1)).bin" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "bench: a client of the RSS round failed" >&2; done
  "$bin/shm_client" --queue "$queue" --stop-server -q
  wait "$timer" || true
  echo
  printf 'peak RSS: server %.1f MiB (16 sessions at once), client %.1f MiB (the large file); idle server CPU over 2 s: %.1f%%\n' \
    "$(calc "$(tail -1 "$work/server.rss") / 1024")" "$(calc "$(tail -1 "$work/client.rss") / 1024")" "$idle"
  start_server
fi

if [ "${BENCH_ONE_CORE:-1}" = 1 ] && command -v taskset > /dev/null; then
  stop_server
  pin="taskset -c 0"
  start_server
  ones="" pipes=""
  for _ in $(seq "$runs"); do
    pipes+="$(timed pipe) "
    ones+="$(timed fetch_big) "
    cmp "$work/root/big.bin" "$work/out/big.bin"
  done
  stop_server
  pin=""
  start_server
  t_pipe1=$(tr ' ' '\n' <<< "$pipes" | grep . | median)
  t_one1=$(tr ' ' '\n' <<< "$ones" | grep . | median)
  echo
  echo "one core: server, client and both cats pinned to CPU 0 (taskset -c 0; median of $runs rounds)"
  row "cat | cat, one core" "$t_pipe1"
  row "shmxfer, one core" "$t_one1"
  printf 'shmxfer on one core: %.2fx cat|cat on one core\n' "$(calc "$t_pipe1 / $t_one1")"
fi

echo
echo "clients at once, ${client_mib} MiB each from its own file (median of $client_runs rounds)"
printf '%-8s %10s %14s %18s\n' clients "MB/s" "x one client" "slowest/fastest"
one=""
for n in $client_counts; do
  aggs="" ratio_worst=0
  for _ in $(seq "$client_runs"); do
    fresh_out
    pids=()
    for i in $(seq 1 "$n"); do
      (
        t0=$EPOCHREALTIME
        "$bin/shm_client" --queue "$queue" -q -o "$work/out" "clients/c$i.bin"
        echo "$t0 $EPOCHREALTIME" > "$work/out/t$i"
      ) &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    read -r first last fast slow < <(cat "$work/out"/t* | awk '
      NR == 1 { a = $1; b = $2; f = $2 - $1; s = f }
      { if ($1 < a) a = $1; if ($2 > b) b = $2; d = $2 - $1; if (d < f) f = d; if (d > s) s = d }
      END { print a, b, f, s }')
    aggs+="$(calc "$n * $client_mib * 1.048576 / ($last - $first)") "
    ratio=$(calc "$slow / $fast")
    if [ "$(calc "($ratio > $ratio_worst)")" = 1 ]; then ratio_worst=$ratio; fi
  done
  for i in $(seq 1 "$n"); do cmp "$work/root/clients/c$i.bin" "$work/out/c$i.bin"; done
  agg=$(tr ' ' '\n' <<< "$aggs" | grep . | median)
  [ -z "$one" ] && one=$agg
  printf '%-8s %10.0f %13.2fx %17.2fx\n' "$n" "$agg" "$(calc "$agg / $one")" "$ratio_worst"
done
echo "(x one client: against the first count; slowest/fastest: the worst round's slowest client time over its fastest)"

if [ "${BENCH_SWEEP:-0}" = 1 ]; then
  echo
  echo "sweep: ring sizes and spin budgets (median of $runs rounds)"
  stop_server
  for spin in 0 10 50 200; do
    start_server "$spin"
    for slots in 1 2 4; do
      ts=""
      for _ in $(seq "$runs"); do ts+="$(SHMXFER_SPIN_US=$spin timed fetch_big --slots "$slots") "; done
      row "shmxfer slots=$slots spin=${spin}us" "$(tr ' ' '\n' <<< "$ts" | grep . | median)"
    done
    stop_server
  done
  start_server
fi

# Each round into a directory of its own, removed only after the last: on
# ext4 a new inode skips those freed in the last seconds one by one, so
# creating 1000 files right after deleting 1000 measures that scan.
mapfile -t small < <(cd "$work/root" && ls small | sed 's|^|small/|')
cps="" shms=""
for r in $(seq "$runs"); do
  mkdir -p "$work/small/cp$r" "$work/small/shm$r"
  sync
  t0=$EPOCHREALTIME
  cp -r "$work/root/small" "$work/small/cp$r/small"
  cps+="$(calc "$EPOCHREALTIME - $t0") "
  sync
  t0=$EPOCHREALTIME
  "$bin/shm_client" --queue "$queue" -q -o "$work/small/shm$r" "${small[@]}"
  shms+="$(calc "$EPOCHREALTIME - $t0") "
done
rm -rf "$work/small"
t_cps=$(tr ' ' '\n' <<< "$cps" | grep . | median)
t_shms=$(tr ' ' '\n' <<< "$shms" | grep . | median)
echo
printf '1000 files of 4 KiB (median of %s): cp -r %.3f s, shmxfer %.3f s (%.2fx cp)\n' "$runs" "$t_cps" "$t_shms" "$(calc "$t_cps / $t_shms")"
stop_server
echo "load at the end: $(uptime | sed 's/.*load average: //')"
