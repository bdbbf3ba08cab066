#!/usr/bin/env bash
# Shipping benchmark: the same sealed segments (SEGMENTS of SIZE, made once
# by `logcut write`) uploaded to a local s3s-fs server by `logcut ship`
# (4 uploads at once) and by `rclone copy` (its default, 4 transfers),
# interleaved over ROUNDS rounds, each into a fresh prefix. Prints each
# round's times, the medians, and logcut's ratio to rclone (a target of at
# least 0.8x). Both read from the page cache and write through one
# loopback server: the limit is the server (s3s-fs writes each object and
# its metadata to disk), not the network.
#
#   bench/ship.sh                        # 200 segments of 1 MiB, 3 rounds
#   SEGMENTS=50 SIZE=4MiB bench/ship.sh
#
# Needs s3s-fs (`cargo install s3s-fs --version 0.14.1 --features binary`)
# and rclone (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SEGMENTS=${SEGMENTS:-200}
SIZE=${SIZE:-1MiB}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-${TMPDIR:-/tmp}/logcut-ship-bench}
PORT=${PORT:-18099}

command -v rclone >/dev/null || {
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
}
S3S=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
cargo build --release --bin logcut -q
LOGCUT=$PWD/target/release/logcut

rm -rf "$WORK"; mkdir -p "$WORK/s3/bench"
export AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_REGION=us-east-1
RUST_LOG=warn "$S3S" --host 127.0.0.1 --port "$PORT" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK/s3" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

# The segments: incompressible-ish lines, SEGMENTS sealed segments.
bytes=$(numfmt --from=iec "${SIZE%iB}")
lines=$(( SEGMENTS * bytes / 100 ))
awk -v n="$lines" 'BEGIN { srand(7); for (i = 0; i < n; i++) { s = ""; for (j = 0; j < 5; j++) s = s sprintf("%08x%08x", int(rand()*4294967295), int(rand()*4294967295)); printf "%010d %s\n", i, substr(s, 1, 88) } }' \
  | "$LOGCUT" write --dir "$WORK/log" --max-size "$SIZE" --fsync never --index none
total=$(du -sb "$WORK/log" | cut -f1)
echo "$(ls "$WORK/log" | grep -c '^app\.2') segments, $total bytes"

export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other \
  RCLONE_CONFIG_S3_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  RCLONE_CONFIG_S3_ENDPOINT=http://127.0.0.1:$PORT RCLONE_CONFIG_S3_FORCE_PATH_STYLE=true
now() { date +%s.%N; }
logcut_t=(); rclone_t=()
for r in $(seq "$ROUNDS"); do
  rm -rf "$WORK/copy"; cp -a "$WORK/log" "$WORK/copy"
  t0=$(now)
  "$LOGCUT" ship "$WORK/copy" --to "s3://bench/logcut$r" --ship-endpoint "http://127.0.0.1:$PORT" \
    --ship-path-style 2>/dev/null >/dev/null
  t1=$(now)
  # A CA bundle in the environment makes this rclone refuse a plain-HTTP
  # endpoint.
  env -u AWS_CA_BUNDLE rclone copy "$WORK/log" "s3:bench/rclone$r" --include 'app.2*' 2>/dev/null
  t2=$(now)
  l=$(echo "$t1 - $t0" | bc); c=$(echo "$t2 - $t1" | bc)
  logcut_t+=("$l"); rclone_t+=("$c")
  echo "round $r: logcut ship $l s, rclone copy $c s"
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ml=$(med "${logcut_t[@]}"); mc=$(med "${rclone_t[@]}")
echo "| tool | median s | MB/s |"
echo "|---|---|---|"
echo "| logcut ship | $ml | $(echo "scale=1; $total / $ml / 1000000" | bc) |"
echo "| rclone copy | $mc | $(echo "scale=1; $total / $mc / 1000000" | bc) |"
echo "logcut / rclone throughput: $(echo "scale=2; $mc / $ml" | bc)x (target: at least 0.8x)"
