#!/bin/bash
# mcp_bench.sh BUILD N: one MCP tool call through warden (bench_mcp) beside the official
# SDK's client calling the same server directly (mcp_direct.mjs), over stdio and over
# Streamable HTTP, alternated twice (docs/performance.md)
set -euo pipefail
build=${1:-build}; n=${2:-2000}
ev=tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js
for round in 1 2; do
  node bench/mcp_direct.mjs "$n" stdio "$ev"
  "$build/bench/bench_mcp" "$n" stdio "$ev"
done
port=$((20000 + RANDOM % 10000))
PORT=$port node "$ev" streamableHttp >/tmp/warden-bench-mcp-http.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q "listening on port" /tmp/warden-bench-mcp-http.log && break; sleep 0.05; done
for round in 1 2; do
  node bench/mcp_direct.mjs "$n" http "http://127.0.0.1:$port/mcp"
  "$build/bench/bench_mcp" "$n" http "http://127.0.0.1:$port/mcp"
done
