#!/usr/bin/env bash
# busted_shards.sh BUSTED... - the busted specs in two processes at once, then one
# summary of both in busted's own words (make's `total` reads it). Most specs wait on
# servers, subprocesses and clocks rather than on a core, so two processes on a 2-core
# machine take about 60% of the time of one. The spec files are dealt by their measured
# seconds (the heavy ones below; others count 1), the heaviest first, each to the
# process with less so far. Each process's output is shown whole, its summary line
# renamed; the exit status is the worse of the two.
set -uo pipefail

declare -A WEIGHT=(
  [spec/scale_out_spec.lua]=43 [spec/attack/memory_attack_spec.lua]=38 [spec/mcp_serve_spec.lua]=22
  [spec/mcp_spec.lua]=21 [spec/openai_facade_spec.lua]=11 [spec/notify_spec.lua]=10
  [spec/attack/cpu_attack_spec.lua]=9 [spec/serve_spec.lua]=9 [spec/oversight_spec.lua]=6
  [spec/retry_spec.lua]=6 [spec/attack/log_attack_spec.lua]=5 [spec/auth_block_spec.lua]=5
)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mapfile -t files < <(find spec -name '*_spec.lua' | sort)
mapfile -t files < <(for f in "${files[@]}"; do echo "${WEIGHT[$f]:-1} $f"; done | sort -k1,1nr -k2 | cut -d' ' -f2)
a=() b=()
wa=0 wb=0
for f in "${files[@]}"; do
  w=${WEIGHT[$f]:-1}
  if ((wa <= wb)); then a+=("$f"); wa=$((wa + w)); else b+=("$f"); wb=$((wb + w)); fi
done
"$@" "${a[@]}" >"$out/1" 2>&1 &
p1=$!
"$@" "${b[@]}" >"$out/2" 2>&1 &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
summary='^([0-9]+) success(es)? / ([0-9]+) failures? / ([0-9]+) errors? / ([0-9]+) pending : ([0-9.]+) seconds'
for i in 1 2; do
  sed -E "s#${summary}#shard $i: \\1 successes / \\3 failures / \\4 errors / \\5 pending : \\6 seconds#" "$out/$i"
done
cat "$out/1" "$out/2" | sed -nE "s#${summary}#\\1 \\3 \\4 \\5 \\6#p" |
  awk '{s += $1; f += $2; e += $3; p += $4; if ($5 > t) t = $5; n++}
       END {if (n != 2) {f += 1; print "a shard printed no summary"}
            printf "%d successes / %d failures / %d errors / %d pending : %.2f seconds (two shards at once)\n", s, f, e, p, t}'
((r1 > r2)) && exit $r1
exit $r2
