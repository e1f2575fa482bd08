#!/usr/bin/env bash
# Throughput of shmxfer beside dd bs=4096, a cat|cat pipe, cp and a 4 KiB pipe,
# in one run on one machine: idle, and with busy loops running; many clients
# at once; real trees and many small files with -r beside cp -r, tar | tar
# and rsync -a. Rounds are interleaved (dd, pipe, cp, shmxfer, dd, ...) and
# medians reported; the same file uploaded (--put) and fetched through a relay
# (-H, over a local remote shell, and over `ssh localhost` where that logs in
# without a password). Prints figures and ratios; it asserts nothing (shared
# machines are noisy: compare ratios within one run, not seconds across runs).
# No root; nothing pinned but the rows that say so.
#   usage: scripts/bench.sh [SIZE_MIB] [RUNS]        (defaults: 256 7)
#   SIZE_MIB   the one large file; RUNS  rounds of each one-file, tree and small-file command
#   BENCH_PARTS="main busy rss onecore clients trees small"  the parts to run (default: all)
#   BENCH_HOGS="1 2"            busy rows: the large file with that many busy loops
#                               (sh -c 'while :; do :; done') running during the rounds,
#                               beside cat|cat, cp, the 4 KiB pipe and shmxfer pinned to CPU 0
#   BENCH_BUSY_RUNS=RUNS        rounds per busy count
#   BENCH_CLIENTS="1 2 4 8 16"  clients at once, each fetching its own file of
#   BENCH_CLIENT_MIB=64         MiB, in BENCH_CLIENT_RUNS=3 rounds per count
#   BENCH_TREE=DIR              the tree of many small files (default ~/.cargo/registry/src
#                               where it exists, else one generated with the size spread of
#                               crate sources: BENCH_TREE=gen, BENCH_TREE_FILES=4000 files)
#   BENCH_BIGTREE_MIB=512       the generated tree of large files: that many MiB in
#   BENCH_BIGTREE_FILES=32      that many files
#   BENCH_SMALL_FILES=1000      the small-files part: that many files of 4 KiB
#   BENCH_QUEUE=/name           the queue (default /shmxfer_bench_<pid>)
#   BENCH_BIN=DIR               use shm_server and shm_client from DIR instead of building
#                               (the 4 KiB pipe, examples/pipe4k.rs, is built from this tree)
#   BENCH_SWEEP=1 also tries ring sizes (--slots) and spin budgets (SHMXFER_SPIN_US).
#   BENCH_SSH=0 skips the ssh rows (tried only when `ssh -o BatchMode=yes localhost true` works):
#               ssh localhost cat, scp, rsync -e ssh (where installed) and -H localhost; and,
#               run as root where /usr/sbin/sshd and taskset are, the same with the two hosts'
#               sides on separate CPUs: a second sshd on 127.0.0.1:BENCH_SSH_SPLIT_PORT (2222)
#               pinned to CPU 1 (so the remote side, the relay, runs there, and the server is
#               moved there for these rounds), the local side pinned to CPU 0.
#   Peak RSS and the idle server's CPU are measured where /usr/bin/time is.
#   BENCH_ONE_CORE=0 skips the one-core row (both programs, and the pipe, pinned to
#                    CPU 0 with taskset; skipped where taskset is missing).
#   A quick try: BENCH_CLIENTS="1 2" BENCH_CLIENT_MIB=4 BENCH_TREE=gen BENCH_TREE_FILES=200 \
#                BENCH_BIGTREE_MIB=16 BENCH_SMALL_FILES=100 scripts/bench.sh 8 2
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${2:-7}
parts=" ${BENCH_PARTS:-main busy rss onecore clients trees small} "
part() { [[ $parts == *" $1 "* ]]; }
hog_counts=${BENCH_HOGS-1 2}
busy_runs=${BENCH_BUSY_RUNS:-$runs}
client_counts=${BENCH_CLIENTS:-1 2 4 8 16}
client_mib=${BENCH_CLIENT_MIB:-64}
client_runs=${BENCH_CLIENT_RUNS:-3}
bigtree_mib=${BENCH_BIGTREE_MIB:-512}
bigtree_files=${BENCH_BIGTREE_FILES:-32}
small_files=${BENCH_SMALL_FILES:-1000}
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$(cd "$BENCH_BIN" && pwd)
  cargo build --release --locked --quiet --example pipe4k
else
  cargo build --release --locked --quiet --bins --example pipe4k
  bin=$PWD/target/release
fi
pipe4k_bin=$PWD/target/release/examples/pipe4k
mkdir -p target # a fresh clone with BENCH_BIN has no target/ yet
work=$(mktemp -d "$PWD/target/bench.XXXXXX")
queue=${BENCH_QUEUE:-/shmxfer_bench_$$}
pinned_queue=${queue}_pinned
server="" pinned_server="" split_sshd="" hogs=()
stop_hogs() {
  local p
  for p in "${hogs[@]}"; do kill "$p" 2> /dev/null && wait "$p" 2> /dev/null || true; done
  hogs=()
  return 0
}
start_hogs() { # N: busy loops in the background until stop_hogs
  local i
  for i in $(seq "$1"); do
    sh -c 'while :; do :; done' &
    hogs+=($!)
  done
  return 0
}
cleanup() {
  stop_hogs
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [ -n "$pinned_server" ] && kill "$pinned_server" 2>/dev/null && wait "$pinned_server" 2>/dev/null
  [ -n "$split_sshd" ] && kill "$split_sshd" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

max_clients=0
for n in $client_counts; do [ "$n" -gt "$max_clients" ] && max_clients=$n; done
mkdir -p "$work/root/small" "$work/root/clients" "$work/root/trees" "$work/out" "$work/up"
# The remote shell of the relay rows: drops the host and runs the rest here.
printf '#!/bin/sh\nshift\nexec "$@"\n' > "$work/local-rsh"
chmod +x "$work/local-rsh"
head -c $((size_mib * 1048576)) /dev/urandom > "$work/root/big.bin"
if part clients || part rss; then
  for i in $(seq 1 "$max_clients"); do
    head -c $((client_mib * 1048576)) /dev/urandom > "$work/root/clients/c$i.bin"
  done
fi
if part small; then
  for i in $(seq -w 1 "$small_files"); do head -c 4096 /dev/urandom > "$work/root/small/f$i"; done
fi
cat "$work/root/big.bin" "$work/root/clients/"* > /dev/null 2>&1 || true # into the page cache

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
wait_for_lock() { # QUEUE: until its server holds its lock
  while [ ! -e "/dev/shm/${1#/}.lock" ]; do sleep 0.01; done
}
start_server() { # [SPIN_US]: the server's spin budget, default when not given
  if [ -n "${1:-}" ]; then
    SHMXFER_SPIN_US=$1 $pin "$bin/shm_server" --queue "$queue" --root "$work/root" --accept "$work/up" --persistent -q &
  else
    $pin "$bin/shm_server" --queue "$queue" --root "$work/root" --accept "$work/up" --persistent -q &
  fi
  server=$!
  wait_for_lock "$queue"
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
pipe4k() { "$pipe4k_bin" "$work/root/big.bin" "$work/out/big.bin" 0; }
put_big() { "$bin/shm_client" --queue "$queue" -q --put "$work/root/big.bin"; }
relay_big() { # RSH: fetches big.bin through `RSH localhost shm_client --relay`
  "$bin/shm_client" --queue "$queue" -q -o "$work/out" -H localhost --rsh "$1" \
    --remote-client "$bin/shm_client" big.bin
}
ssh_ok=0
if [ "${BENCH_SSH:-1}" = 1 ] && ssh -o BatchMode=yes -o ConnectTimeout=3 localhost true 2> /dev/null; then
  ssh_ok=1
fi
rsync_ok=0
command -v rsync > /dev/null && rsync_ok=1
# The split rows: a second sshd pinned to CPU 1 (its sessions inherit the
# CPU), the local side on CPU 0.
split_port=${BENCH_SSH_SPLIT_PORT:-2222}
if part main && [ "$ssh_ok" = 1 ] && [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ] && command -v taskset > /dev/null \
  && [ "$(nproc)" -ge 2 ]; then
  mkdir -p /run/sshd
  taskset -c 1 /usr/sbin/sshd -D -p "$split_port" -o ListenAddress=127.0.0.1 -o PidFile=none &
  split_sshd=$!
  for _ in $(seq 50); do
    ssh -p "$split_port" -o BatchMode=yes -o ConnectTimeout=1 localhost true 2> /dev/null && break
    sleep 0.1
  done
  ssh -p "$split_port" -o BatchMode=yes -o ConnectTimeout=1 localhost true 2> /dev/null \
    || { kill "$split_sshd" 2> /dev/null; split_sshd=""; }
fi
split_ssh="ssh -p $split_port"
ssh_cat_split() { taskset -c 0 $split_ssh -o BatchMode=yes localhost cat "$work/root/big.bin" > "$work/out/big.bin"; }
scp_split() { taskset -c 0 scp -q -P "$split_port" -o BatchMode=yes "localhost:$work/root/big.bin" "$work/out/big.bin"; }
rsync_split() { taskset -c 0 rsync -e "$split_ssh -o BatchMode=yes" "localhost:$work/root/big.bin" "$work/out/big.bin"; }
relay_split() {
  taskset -c 0 "$bin/shm_client" --queue "$queue" -q -o "$work/out" -H localhost --rsh "$split_ssh" \
    --remote-client "$bin/shm_client" big.bin
}
ssh_cat() { ssh -o BatchMode=yes localhost cat "$work/root/big.bin" > "$work/out/big.bin"; }
scp_big() { scp -q -o BatchMode=yes "localhost:$work/root/big.bin" "$work/out/big.bin"; }
rsync_ssh_big() { rsync -e "ssh -o BatchMode=yes" "localhost:$work/root/big.bin" "$work/out/big.bin"; }
declare -A times=()
med() { tr ' ' '\n' <<< "${times[$1]}" | grep . | median; }
worst() { tr ' ' '\n' <<< "${times[$1]}" | grep . | slowest; }
# Rows say MB/s of the large file and a ratio against the reference of
# their table: `ref` seconds, named `ref_name`.
ref="" ref_name=""
row() { # LABEL SECONDS [SLOWEST]
  printf '%-36s %8.3f s %8.0f MB/s %6.2fx %s' "$1" "$2" "$(calc "$size_mib * 1.048576 / $2")" "$(calc "$ref / $2")" "$ref_name"
  if [ -n "${3:-}" ]; then printf '   slowest round %.2fx median' "$(calc "$2 / $3")"; fi
  echo
}
start_server

if part main; then
  for _ in $(seq "$runs"); do
    times[dd]+="$(timed dd if="$work/root/big.bin" of="$work/out/big.bin" bs=4096 status=none) "
    times[pipe]+="$(timed pipe) "
    times[cp]+="$(timed cp "$work/root/big.bin" "$work/out/big.bin") "
    times[p4k]+="$(timed pipe4k) "
    times[shm]+="$(timed fetch_big) "
    cmp "$work/root/big.bin" "$work/out/big.bin"
    times[put]+="$(timed put_big) "
    cmp "$work/root/big.bin" "$work/up/big.bin"
    times[relay]+="$(timed relay_big "$work/local-rsh") "
    cmp "$work/root/big.bin" "$work/out/big.bin"
    if [ "$ssh_ok" = 1 ]; then
      times[ssh]+="$(timed ssh_cat) "
      times[scp]+="$(timed scp_big) "
      if [ "$rsync_ok" = 1 ]; then times[rsync_ssh]+="$(timed rsync_ssh_big) "; fi
      times[sshrelay]+="$(timed relay_big ssh) "
      cmp "$work/root/big.bin" "$work/out/big.bin"
    fi
    if [ -n "$split_sshd" ]; then
      taskset -cp 1 "$server" > /dev/null # with its threads: the remote side's server
      for t in /proc/"$server"/task/*; do taskset -cp 1 "${t##*/}" > /dev/null; done
      times[ssh_split]+="$(timed ssh_cat_split) "
      times[scp_split]+="$(timed scp_split) "
      if [ "$rsync_ok" = 1 ]; then times[rsync_split]+="$(timed rsync_split) "; fi
      times[relay_split]+="$(timed relay_split) "
      cmp "$work/root/big.bin" "$work/out/big.bin"
      for t in /proc/"$server"/task/*; do taskset -cp 0-$(($(nproc) - 1)) "${t##*/}" > /dev/null; done
    fi
  done
  rm -f "$work/up/big.bin"
  ref=$(med dd) ref_name=dd
  echo
  echo "one ${size_mib} MiB file, page cache -> disk (median of $runs interleaved rounds)"
  row "dd bs=4096" "$(med dd)" "$(worst dd)"
  row "cat | cat" "$(med pipe)" "$(worst pipe)"
  row "cp" "$(med cp)" "$(worst cp)"
  row "4 KiB pipe, both ends on CPU 0" "$(med p4k)" "$(worst p4k)"
  row "shmxfer (defaults)" "$(med shm)" "$(worst shm)"
  printf 'shmxfer: %.2fx cat|cat, %.2fx cp, %.2fx the 4 KiB pipe\n' "$(calc "$(med pipe) / $(med shm)")" \
    "$(calc "$(med cp) / $(med shm)")" "$(calc "$(med p4k) / $(med shm)")"
  echo
  echo "the same file the other way and through a relay (same rounds)"
  row "shmxfer --put (upload)" "$(med put)" "$(worst put)"
  row "shmxfer -H, relay over a local rsh" "$(med relay)" "$(worst relay)"
  printf 'upload: %.2fx the fetch (aim: >= 0.95); relay over a local rsh: %.2fx cat|cat, %.2fx the fetch\n' \
    "$(calc "$(med shm) / $(med put)")" "$(calc "$(med pipe) / $(med relay)")" "$(calc "$(med shm) / $(med relay)")"
  if [ "$ssh_ok" = 1 ]; then
    row "ssh localhost cat" "$(med ssh)" "$(worst ssh)"
    row "scp" "$(med scp)" "$(worst scp)"
    if [ "$rsync_ok" = 1 ]; then row "rsync -e ssh" "$(med rsync_ssh)" "$(worst rsync_ssh)"; fi
    row "shmxfer -H localhost (ssh)" "$(med sshrelay)" "$(worst sshrelay)"
    printf 'relay over ssh: %.2fx ssh localhost cat, %.2fx scp' "$(calc "$(med ssh) / $(med sshrelay)")" \
      "$(calc "$(med scp) / $(med sshrelay)")"
    if [ "$rsync_ok" = 1 ]; then printf ', %.2fx rsync -e ssh' "$(calc "$(med rsync_ssh) / $(med sshrelay)")"; fi
    echo " (aim: >= 0.9x scp and rsync -e ssh)"
  else
    echo "(ssh rows skipped: ssh -o BatchMode=yes localhost does not log in here)"
  fi
  if [ -n "$split_sshd" ]; then
    echo
    echo "over ssh with the hosts' sides on separate CPUs (local side CPU 0; sshd on port $split_port, its sessions, the relay and the server CPU 1)"
    row "ssh localhost cat (split)" "$(med ssh_split)" "$(worst ssh_split)"
    row "scp (split)" "$(med scp_split)" "$(worst scp_split)"
    if [ "$rsync_ok" = 1 ]; then row "rsync -e ssh (split)" "$(med rsync_split)" "$(worst rsync_split)"; fi
    row "shmxfer -H localhost (split)" "$(med relay_split)" "$(worst relay_split)"
    printf 'relay over ssh, split: %.2fx ssh localhost cat, %.2fx scp' \
      "$(calc "$(med ssh_split) / $(med relay_split)")" "$(calc "$(med scp_split) / $(med relay_split)")"
    if [ "$rsync_ok" = 1 ]; then printf ', %.2fx rsync -e ssh' "$(calc "$(med rsync_split) / $(med relay_split)")"; fi
    echo " (aim: >= 0.9x scp and rsync -e ssh)"
  elif [ "$ssh_ok" = 1 ]; then
    echo "(split ssh rows skipped: they need root, /usr/sbin/sshd, taskset and 2 CPUs)"
  fi
fi

if part busy && [ -n "$hog_counts" ]; then
  # The same file with busy loops running: a user's machine is rarely idle.
  # Beside the defaults, shmxfer with both programs pinned to CPU 0 (a
  # second server, pinned, on a queue of its own) where taskset is.
  have_taskset=0
  if command -v taskset > /dev/null; then
    have_taskset=1
    taskset -c 0 "$bin/shm_server" --queue "$pinned_queue" --root "$work/root" --persistent -q &
    pinned_server=$!
    wait_for_lock "$pinned_queue"
  fi
  fetch_pinned() { taskset -c 0 "$bin/shm_client" --queue "$pinned_queue" -q -o "$work/out" big.bin; }
  for h in $hog_counts; do
    for k in pipe cp p4k shm shm_pinned; do times[busy_$k]=""; done
    start_hogs "$h"
    for _ in $(seq "$busy_runs"); do
      times[busy_pipe]+="$(timed pipe) "
      times[busy_cp]+="$(timed cp "$work/root/big.bin" "$work/out/big.bin") "
      times[busy_p4k]+="$(timed pipe4k) "
      times[busy_shm]+="$(timed fetch_big) "
      cmp "$work/root/big.bin" "$work/out/big.bin"
      if [ "$have_taskset" = 1 ]; then
        times[busy_shm_pinned]+="$(timed fetch_pinned) "
        cmp "$work/root/big.bin" "$work/out/big.bin"
      fi
    done
    stop_hogs
    ref=$(med busy_p4k) ref_name="4K pipe"
    echo
    echo "busy: the ${size_mib} MiB file with $h busy loop(s) running (median of $busy_runs interleaved rounds)"
    row "cat | cat" "$(med busy_pipe)" "$(worst busy_pipe)"
    row "cp" "$(med busy_cp)" "$(worst busy_cp)"
    row "4 KiB pipe, both ends on CPU 0" "$ref" "$(worst busy_p4k)"
    row "shmxfer (defaults)" "$(med busy_shm)" "$(worst busy_shm)"
    if [ "$have_taskset" = 1 ]; then
      row "shmxfer, both on CPU 0 (taskset)" "$(med busy_shm_pinned)" "$(worst busy_shm_pinned)"
    fi
    printf 'shmxfer with %s busy: %.2fx the 4 KiB pipe (aim: >= 1.5), slowest round %.2fx median (aim: >= 0.7), %.2fx cat|cat, %.2fx cp\n' \
      "$h" "$(calc "$ref / $(med busy_shm)")" "$(calc "$(med busy_shm) / $(worst busy_shm)")" \
      "$(calc "$(med busy_pipe) / $(med busy_shm)")" "$(calc "$(med busy_cp) / $(med busy_shm)")"
  done
  if [ -n "$pinned_server" ]; then
    "$bin/shm_client" --queue "$pinned_queue" --stop-server -q
    wait "$pinned_server" || true
    pinned_server=""
  fi
fi

if part rss && [ -x /usr/bin/time ]; then
  # Peak RSS of each side (a server serving 16 sessions at once, a client
  # fetching the large file) and the idle server's CPU time over 2 s.
  stop_server
  /usr/bin/time -f %M -o "$work/server.rss" "$bin/shm_server" --queue "$queue" --root "$work/root" --persistent -q &
  timer=$!
  wait_for_lock "$queue"
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

if part onecore && [ "${BENCH_ONE_CORE:-1}" = 1 ] && command -v taskset > /dev/null; then
  stop_server
  pin="taskset -c 0"
  start_server
  for k in pipe shm; do times[one_$k]=""; done
  for _ in $(seq "$runs"); do
    times[one_pipe]+="$(timed pipe) "
    times[one_shm]+="$(timed fetch_big) "
    cmp "$work/root/big.bin" "$work/out/big.bin"
  done
  stop_server
  pin=""
  start_server
  ref=$(med one_pipe) ref_name="cat|cat"
  echo
  echo "one core: server, client and both cats pinned to CPU 0 (taskset -c 0; median of $runs rounds)"
  row "cat | cat, one core" "$ref" "$(worst one_pipe)"
  row "shmxfer, one core" "$(med one_shm)" "$(worst one_shm)"
  printf 'shmxfer on one core: %.2fx cat|cat on one core (aim: >= 0.6)\n' "$(calc "$ref / $(med one_shm)")"
fi

if part clients; then
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
  echo "(x one client: against the first count, aim >= 0.9; slowest/fastest: the worst round's slowest client time over its fastest, aim <= 1.5)"
fi

if [ "${BENCH_SWEEP:-0}" = 1 ]; then
  echo
  echo "sweep: ring sizes and spin budgets (median of $runs rounds)"
  stop_server
  ref=$(med dd) ref_name=dd
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

# Trees with -r: many small files and a few large ones, each round into a
# directory of its own (see the small-files part for why), beside cp -r,
# tar | tar and rsync -a.
if part trees; then
  tree_src=${BENCH_TREE:-}
  if [ -z "$tree_src" ] && [ -d "$HOME/.cargo/registry/src" ]; then tree_src=$HOME/.cargo/registry/src; fi
  if [ -z "$tree_src" ] || [ "$tree_src" = gen ]; then
    # Crate sources' spread: median about 3 KiB, one in ten under 200 bytes
    # or over 30 KiB, a few up to 1 MiB; about 20 files per directory, three
    # levels deep. Text, as sources are.
    tree_desc="generated, the size spread of crate sources"
    awk -v n="${BENCH_TREE_FILES:-4000}" -v root="$work/root/trees/small" 'BEGIN {
      srand(1); line = ""
      for (i = 0; i < 80; i++) line = line sprintf("%c", 97 + (i * 7) % 26)
      line = line "\n"; blob = ""
      while (length(blob) < 1100000) blob = blob line
      for (i = 0; i < n; i++) {
        d = sprintf("%s/c%03d/d%d", root, int(i / 60), int(i / 20) % 3)
        if (!(d in made)) { system("mkdir -p \"" d "\""); made[d] = 1 }
        z = sqrt(-2 * log(1 - rand())) * cos(6.2831853 * rand())
        size = int(exp(8.06 + 1.84 * z)); if (size > 1048576) size = 1048576
        f = sprintf("%s/f%d.rs", d, i); printf "%s", substr(blob, 1, size) > f; close(f)
      } }'
  else
    tree_desc=$tree_src
    # Its regular files only, with their paths (a link or a special file
    # would be skipped by some commands and not by others).
    mkdir -p "$work/root/trees/small"
    (cd "$tree_src" && find . -type f -readable -print0 | xargs -0 -r cp --parents -t "$work/root/trees/small")
  fi
  # Large files of 1/4 to 7/4 of the mean size, in two directories.
  awk -v n="$bigtree_files" -v mib="$bigtree_mib" 'BEGIN {
      srand(2); for (i = 0; i < n; i++) { w[i] = 0.25 + 1.5 * rand(); t += w[i] }
      for (i = 0; i < n; i++) print i % 2, i, int(w[i] / t * mib * 1048576) }' |
    while read -r d i bytes; do
      mkdir -p "$work/root/trees/large/d$d"
      head -c "$bytes" /dev/urandom > "$work/root/trees/large/d$d/f$i.bin"
    done
  declare -A tree_files=() tree_bytes=()
  for t in small large; do
    read -r tree_files[$t] tree_bytes[$t] < <(find "$work/root/trees/$t" -type f -printf '%s\n' | awk '{ s += $1 } END { print NR, s }')
  done
  tar -C "$work/root/trees" -cf - . > /dev/null # into the page cache
  tree_cmds="cp tar"
  [ "$rsync_ok" = 1 ] && tree_cmds+=" rsync"
  tree_cmds+=" shm"
  tree_run() { # CMD TREE OUT: one copy of trees/TREE into OUT/TREE
    case $1 in
      cp) cp -r "$work/root/trees/$2" "$3/" ;;
      tar) tar -C "$work/root/trees" -cf - "$2" | tar -C "$3" -xf - ;;
      rsync) rsync -a "$work/root/trees/$2" "$3/" ;;
      shm) "$bin/shm_client" --queue "$queue" -q -o "$3" -r "trees/$2" ;;
    esac
  }
  for r in $(seq "$runs"); do
    for t in small large; do
      for c in $tree_cmds; do
        out=$work/tree_out/$t/$c$r
        mkdir -p "$out"
        sync
        t0=$EPOCHREALTIME
        tree_run "$c" "$t" "$out"
        times[tree_${t}_$c]+="$(calc "$EPOCHREALTIME - $t0") "
        if [ "$r" = 1 ]; then diff -r "$work/root/trees/$t" "$out/$t"; fi
        # Large files: few inodes, much space; small ones stay to the end.
        if [ "$t" = large ]; then rm -rf "$out"; fi
      done
    done
  done
  rm -rf "$work/tree_out"
  declare -A tree_names=([cp]="cp -r" [tar]="tar | tar" [rsync]="rsync -a" [shm]="shmxfer -r")
  echo
  echo "trees with -r, page cache -> disk (median of $runs interleaved rounds)"
  for t in small large; do
    if [ "$t" = small ]; then desc=$tree_desc; else desc="generated"; fi
    printf '%s files: %s files, %.1f MB (%s)\n' "$t" "${tree_files[$t]}" "$(calc "${tree_bytes[$t]} / 1e6")" "$desc"
    t_cp=$(med tree_${t}_cp)
    for c in $tree_cmds; do
      printf '  %-12s %8.3f s %8.0f MB/s %6.2fx cp -r   slowest round %.2fx median\n' "${tree_names[$c]}" \
        "$(med tree_${t}_$c)" "$(calc "${tree_bytes[$t]} / 1e6 / $(med tree_${t}_$c)")" \
        "$(calc "$t_cp / $(med tree_${t}_$c)")" "$(calc "$(med tree_${t}_$c) / $(worst tree_${t}_$c)")"
    done
    printf '  shmxfer -r: %.2fx cp -r, %.2fx tar | tar' "$(calc "$t_cp / $(med tree_${t}_shm)")" \
      "$(calc "$(med tree_${t}_tar) / $(med tree_${t}_shm)")"
    if [ "$rsync_ok" = 1 ]; then
      printf ', %.2fx rsync -a' "$(calc "$(med tree_${t}_rsync) / $(med tree_${t}_shm)")"
    else
      printf ' (rsync not installed)'
    fi
    echo
  done
  rm -rf "$work/root/trees"
fi

if part small; then
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
  printf '%s files of 4 KiB (median of %s): cp -r %.3f s, shmxfer %.3f s (%.2fx cp)\n' "$small_files" "$runs" "$t_cps" "$t_shms" "$(calc "$t_cps / $t_shms")"
fi
stop_server
echo "load at the end: $(uptime | sed 's/.*load average: //')"
