#!/usr/bin/env bash
# run.sh SECONDS BUILD_DIR [NAME...] - runs each libFuzzer harness for SECONDS over its
# committed seeds (engine/fuzz/corpus/NAME; what it finds new goes to BUILD_DIR/corpus/NAME,
# never into the repo), two at a time on the machine's two cores. One line per harness;
# a crash, leak, timeout or broken property leaves its input in BUILD_DIR/findings/ and
# the exit code is 1.
set -u
secs=$1 build=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(policy policy_gen schema provider jsonlua audit lmatch http)
mkdir -p "$build/findings"
run() {
  local n=$1 corpus="$build/corpus/$1" seeds="engine/fuzz/corpus/$1" log="$build/findings/$1.log"
  local dict=""
  mkdir -p "$corpus"
  [ -f "engine/fuzz/$n.dict" ] && dict="-dict=engine/fuzz/$n.dict"
  local start=$SECONDS
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
       -artifact_prefix="$build/findings/$n-" $dict "$corpus" "$seeds" >"$log" 2>&1; then
    local runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    local cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz_$n: ok, $((SECONDS - start)) s, ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) + $(ls "$seeds" | wc -l) seeds"
  else
    echo "fuzz_$n: FAILED after $((SECONDS - start)) s: $(grep -m1 -E "ERROR|runtime error|property broken|timeout|leak" "$log")"
    echo "  the input is in $build/findings/$n-*, the log in $log"
    return 1
  fi
}
fail=0
pids=()
for n in "${names[@]}"; do
  run "$n" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || fail=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
exit $fail
