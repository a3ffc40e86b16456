# Helpers the benchmark scripts share; sourced, not run.

# Seconds (wall clock) a command takes; its output goes to /dev/null and its status is ignored.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}

# Seconds (wall clock) a command takes; a failure shows its output and returns 1.
seconds_checked() {
  local start end log
  log=$(mktemp)
  start=$(date +%s.%N)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  end=$(date +%s.%N)
  rm -f "$log"
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}

# The smaller of two figures ("" counts as none).
min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b < a) print b; else print a }'; }

# The release binary of the checkout at $1, built first when missing or older than a source file.
release_galley() {
  local galley="$1/target/release/galley"
  if [ ! -x "$galley" ] || [ -n "$(find "$1/src" -newer "$galley" -name '*.rs' -print -quit)" ]; then
    echo "building the release binary..." >&2
    (cd "$1" && cargo build --release --quiet)
  fi
  echo "$galley"
}

# One target line: name, measured value ("-" when not measured), operator (< or <=), limit.
target() {
  local verdict
  if [ "$2" = "-" ]; then verdict="not measured"
  else verdict=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { ok = (op == "<=") ? v <= l : v < l; print ok ? "met" : "MISSED" }')
  fi
  printf '  %-36s %8s %s %-6s %s\n' "$1" "$2" "$3" "$4" "$verdict"
}
