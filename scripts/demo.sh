#!/usr/bin/env bash
# Builds both programs, starts shm_server on the shipped files/ and fetches
# every file with shm_client, then checks each copy byte for byte.
#   usage: scripts/demo.sh [OUT_DIR]      (default: a new temporary directory)
#   SHMXFER_QUEUE=/name runs it on another queue than /shmxfer.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "building shm_server and shm_client (cargo build --release; on a fresh clone of 2 cores about a minute, longer when other work shares them) ..."
cargo build --release --locked --quiet
bin=target/release
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/shmxfer-demo.XXXXXX")}
mkdir -p "$out"

mapfile -t wanted < <(cd files && find . -type f -printf '%P\n' | LC_ALL=C sort)

# Prints a command line quoted so that it can be pasted into a shell.
show() {
  local line="\$" arg
  if [ -n "${SHMXFER_QUEUE:-}" ]; then line+=" SHMXFER_QUEUE=$(printf '%q' "$SHMXFER_QUEUE")"; fi
  for arg in "$@"; do line+=" $(printf '%q' "$arg")"; done
  echo "$line"
}

# The client may start first: it waits for the server's queue.
show "$bin/shm_client" --out-dir "$out" "${wanted[@]}"
"$bin/shm_client" --out-dir "$out" "${wanted[@]}" &
client=$!
sleep 0.2
show "$bin/shm_server" --root files
"$bin/shm_server" --root files &
server=$!
trap 'kill "$server" "$client" 2>/dev/null || true' EXIT

client_status=0
wait "$client" || client_status=$?
server_status=0
wait "$server" || server_status=$?
trap - EXIT
echo "shm_client exited $client_status, shm_server exited $server_status"

for f in "${wanted[@]}"; do
  cmp -- "files/$f" "$out/$(basename -- "$f")"
done
echo "all ${#wanted[@]} files arrived in $out, byte for byte identical"
stem=${SHMXFER_QUEUE:-/shmxfer}
stem=${stem#/}
leftovers=$(ls /dev/shm | grep -F -e "$stem." | grep -E "^(sem\.)?$stem\." || true)
if [ -n "$leftovers" ]; then
  echo "left in /dev/shm: $leftovers" >&2
  exit 1
fi
echo "nothing left in /dev/shm"
[ "$client_status" -eq 0 ] && [ "$server_status" -eq 0 ]
