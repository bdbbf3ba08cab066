#!/usr/bin/env bash
# What logrotate's copytruncate loses with a writer that does not cooperate
# (a program appending lines to a file it keeps open, as most do), and the
# same rotations done by `create` + SIGHUP with `logcut write` (nothing lost).
#
# Usage: LINES=2000000 ROTATIONS=20 bench/copytruncate.sh
# Needs logrotate and python3 (installed from Debian when missing).
set -euo pipefail
LINES=${LINES:-2000000}
ROTATIONS=${ROTATIONS:-20}
cd "$(dirname "$0")/.."
if ! [ -x /usr/sbin/logrotate ]; then apt-get update -qq && apt-get install -y -qq logrotate >/dev/null; fi
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
cargo build --release --bin logcut -q
work=$(mktemp -d /tmp/copytruncate.XXXXXX)
trap 'rm -rf "$work"' EXIT

count_ids() { # files... -> "lines distinct"
  cat "$@" 2>/dev/null | awk '{print $2}' | sort -n | uniq -c | awk '{n++; d+=$1-1} END {print n+0, d+0}'
}

rotate_loop() { # conf
  for _ in $(seq "$ROTATIONS"); do
    /usr/sbin/logrotate -f -s "$work/state" "$1"
    sleep 0.05 # a pause between rotations (this is a benchmark, not a test)
  done
}

echo "== copytruncate, a plain writer ($LINES lines, $ROTATIONS rotations)"
mkdir -p "$work/ct"
cat > "$work/ct.conf" <<CONF
$work/ct/app.log {
  rotate 1000
  copytruncate
  nocompress
  missingok
}
CONF
python3 - "$work/ct/app.log" "$LINES" <<'PY' &
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "a", buffering=1) as f:   # O_APPEND, one write per line
    for i in range(n):
        f.write(f"line {i:010d} {'x' * 96}\n")
PY
writer=$!
sleep 0.2
rotate_loop "$work/ct.conf"
wait "$writer"
read -r found dups < <(count_ids "$work"/ct/app.log*)
echo "copytruncate: written $LINES, found $found, lost $((LINES - found)) ($(awk "BEGIN {printf \"%.2f\", 100*($LINES-$found)/$LINES}") %), duplicated $dups"

echo "== logcut write, logrotate create + postrotate SIGHUP"
mkdir -p "$work/lc"
mkfifo "$work/fifo"
./target/release/logcut write --dir "$work/lc" --max-size none < "$work/fifo" &
lc=$!
exec 3>"$work/fifo"
cat > "$work/lc.conf" <<CONF
$work/lc/app.log {
  rotate 1000
  create 0640
  nocompress
  missingok
  postrotate
    kill -HUP $lc
  endscript
}
CONF
python3 - "$LINES" <<'PY' >&3 &
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write(f"line {i:010d} {'x' * 96}\n")
PY
gen=$!
sleep 0.2
rotate_loop "$work/lc.conf"
wait "$gen"
exec 3>&-
wait "$lc"
read -r found dups < <(count_ids "$work"/lc/app.log.[0-9]* <(./target/release/logcut cat "$work/lc"))
echo "logcut + create/HUP: written $LINES, found $found, lost $((LINES - found)), duplicated $dups"
./target/release/logcut verify "$work/lc" | tail -1
