#!/usr/bin/env bash
# Runs joblet's coverage-guided fuzz targets (fuzz/, cargo-fuzz on libFuzzer) on their
# corpora: every parser that takes outside input. `scripts/fuzz.sh SECONDS` runs each
# target that long (default 20, what CI runs); a crash or a hang is written to
# fuzz/artifacts and fails the run. New inputs that reach new code go to
# fuzz/target/new-corpus/TARGET, so a test run leaves the checkout as it was; after a long run
# merge them into the kept corpus: cargo fuzz run -O --sanitizer none TARGET corpus/TARGET
# target/new-corpus/TARGET -- -merge=1
#
# The fuzz targets build with the stable toolchain's nightly switches turned on
# (RUSTC_BOOTSTRAP=1): the machine has no other toolchain. Without a sanitizer: joblet
# forbids unsafe code, and the build takes a third of the time.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz@0.13.2
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
echo "fuzz: building the targets"
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
if ! cargo fuzz build -O --sanitizer none >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  exit 1
fi
status=0
for target in $(cargo fuzz list); do
  mkdir -p "target/new-corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  if ! cargo fuzz run -O --sanitizer none "$target" "target/new-corpus/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
      >"target/fuzz-$target.log" 2>&1; then
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target:" >&2
    tail -n 40 "target/fuzz-$target.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+ +DONE" "target/fuzz-$target.log" | tail -n 2 || true
  fi
done
exit "$status"
