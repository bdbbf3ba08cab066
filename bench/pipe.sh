#!/usr/bin/env bash
# Pipe-logger benchmark: the same pre-generated lines (120 bytes each, unique
# ids) through `logcut write` (default `--fsync seal`, and `--fsync never`),
# multilog, s6-log, svlogd and `rotatelogs -n`,
# each rotating every 1 MB, and `cat > file` as the limit; interleaved over
# ROUNDS rounds. `cat-sync` (`cat > file && sync`, timed together) is the
# limit for the default policy, which syncs every sealed segment. Prints, per
# tool: median throughput, ratio to cat, files, and lines lost, duplicated
# or split across two files; then logcut's ratios to its limits.
#
#   bench/pipe.sh                 # 5,000,000 lines, 3 rounds
#   LINES=1000000 ROUNDS=1 bench/pipe.sh
#
# Installs daemontools, s6, runit and apache2-utils from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-5000000}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-${TMPDIR:-/tmp}/logcut-pipe-bench}

need=()
command -v multilog >/dev/null || need+=(daemontools)
command -v s6-log >/dev/null || need+=(s6)
command -v svlogd >/dev/null || need+=(runit)
command -v rotatelogs >/dev/null || need+=(apache2-utils)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --bin logcut -q
LOGCUT=$PWD/target/release/logcut

rm -rf "$WORK"; mkdir -p "$WORK"
INPUT=$WORK/input.txt
awk -v n="$LINES" 'BEGIN { pad = sprintf("%108s", ""); gsub(/ /, "x", pad); for (i = 0; i < n; i++) printf "%010d %s\n", i, pad }' > "$INPUT"
SIZE=$(stat -c %s "$INPUT")

# Each tool: a command reading stdin into directory $1, and a command
# printing its files' contents in order (oldest first) from $1.
run_tool() {
  local tool=$1 d=$2
  case $tool in
    cat) cat > "$d/out" ;;
    cat-sync) cat > "$d/out" && sync ;;
    logcut) "$LOGCUT" write --dir "$d" --max-size 1MB ;;
    logcut-nosync) "$LOGCUT" write --dir "$d" --max-size 1MB --fsync never ;;
    multilog) multilog s1000000 n10000 "$d" ;;
    s6-log) s6-log -b s1000000 n10000 "$d" ;;
    svlogd) printf 's1000000\nn10000\n' > "$d/config"; svlogd "$d" ;;
    rotatelogs) rotatelogs -n 100000 "$d/out" 1M ;;
  esac
}
read_tool() {
  local tool=$1 d=$2
  case $tool in
    cat|cat-sync) cat "$d/out" ;;
    logcut|logcut-nosync) "$LOGCUT" cat "$d" ;;
    multilog|s6-log|svlogd) (cd "$d"; ls | grep -E '^@' | sort; ls | grep -x current) | (cd "$d"; xargs -r cat) ;;
    rotatelogs) (cd "$d"; ls out* | sort -t. -k2,2n | xargs -r cat) ;;
  esac
}
count_files() {
  local tool=$1 d=$2
  case $tool in
    cat|cat-sync) echo 1 ;;
    logcut|logcut-nosync) ls "$d" | grep -cE '\.log$' ;;
    multilog|s6-log|svlogd) ls "$d" | grep -cE '^@|^current$' ;;
    rotatelogs) ls "$d" | grep -c '^out' ;;
  esac
}
# Lines split across two files: files (other than the last) whose last byte
# is not a newline.
count_split() {
  local tool=$1 d=$2
  case $tool in
    cat|cat-sync|logcut|logcut-nosync) echo 0 ;;
    *) local n=0 f
       for f in $(cd "$d" && ls | grep -vE '^(config|lock|state|newstate)$'); do
         [[ -s "$d/$f" && $(tail -c1 "$d/$f" | od -An -c | tr -d ' ') != '\n' ]] && n=$((n + 1))
       done
       # The last file may legitimately end without a newline only if the input did.
       echo $n ;;
  esac
}

TOOLS=(cat cat-sync logcut logcut-nosync rotatelogs multilog s6-log svlogd)
declare -A RATES FILES LOST DUP SPLIT
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${TOOLS[@]}")
  ((r % 2 == 0)) && order=($(printf '%s\n' "${TOOLS[@]}" | tac))
  for tool in "${order[@]}"; do
    d=$WORK/$tool; rm -rf "$d"; mkdir -p "$d"
    t0=$(date +%s.%N)
    run_tool "$tool" "$d" < "$INPUT"
    t1=$(date +%s.%N)
    rate=$(awk -v b="$SIZE" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / (z - a) / 1e6 }')
    RATES[$tool]+="$rate "
    if ((r == 1)); then
      stats=$(read_tool "$tool" "$d" | awk -v n="$LINES" '
        length($0) != 119 { bad++ ; next }
        { id = $1 + 0; if (seen[id]++) dup++ }
        END { found = 0; for (k in seen) found++; printf "%d %d %d", n - found, dup + 0, bad + 0 }')
      read -r lost dup bad <<< "$stats"
      FILES[$tool]=$(count_files "$tool" "$d")
      LOST[$tool]=$lost; DUP[$tool]=$dup
      SPLIT[$tool]=$(( $(count_split "$tool" "$d") ))
      [[ $bad -gt 0 ]] && SPLIT[$tool]="${SPLIT[$tool]} (+$bad torn lines)"
    fi
    rm -rf "$d"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cat_rate=$(echo "${RATES[cat]}" | median)
printf '%s lines of 120 bytes (%s MB), rotation every 1 MB, %s rounds, median MB/s\n' "$LINES" "$((SIZE / 1000000))" "$ROUNDS"
printf '%-11s %9s %8s %7s %6s %6s %s\n' tool 'MB/s' 'x cat' files lost dup 'split'
for tool in "${TOOLS[@]}"; do
  m=$(echo "${RATES[$tool]}" | median)
  printf '%-11s %9s %8s %7s %6s %6s %s\n' "$tool" "$m" "$(awk -v a="$m" -v c="$cat_rate" 'BEGIN { printf "%.2f", a / c }')" "${FILES[$tool]}" "${LOST[$tool]}" "${DUP[$tool]}" "${SPLIT[$tool]}"
done
# logcut against its limits: without syncing, cat; with the default policy
# (each sealed segment and the directory synced), cat-sync.
ratio() { awk -v a="$(echo "${RATES[$1]}" | median)" -v c="$(echo "${RATES[$2]}" | median)" 'BEGIN { printf "%.2f", a / c }'; }
printf 'logcut --fsync never / cat:       %s\n' "$(ratio logcut-nosync cat)"
printf 'logcut (default) / cat:           %s\n' "$(ratio logcut cat)"
printf 'logcut (default) / cat-sync:      %s\n' "$(ratio logcut cat-sync)"
rm -rf "$WORK"
