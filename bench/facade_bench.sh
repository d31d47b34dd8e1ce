#!/bin/bash
# facade_bench.sh BUILD N: the OpenAI facade's overhead (docs/performance.md). The official
# `openai` client asks the fake model (spec/support/fakellm.c) directly, then a no-tool
# ReAct agent whose model is that same fake model through warden serve's
# /v1/chat/completions, N requests each, plain and streaming (20 words), alternated twice.
set -euo pipefail
build=${1:-build}; n=${2:-500}
tmp=$(mktemp -d /tmp/warden-bench-facade.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
"$build/fakellm" --port-file "$tmp/port" --watch-pid $$ >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.01; done
fake="http://127.0.0.1:$(cat "$tmp/port")/key=bench,words=20/v1"
key=bench-facade-key
mkdir -p "$tmp/agents/plain"
echo 'return warden.agent { name = "plain", model = "default" }' > "$tmp/agents/plain/agent.lua"
cat > "$tmp/policy.yaml" <<YAML
version: 1
models:
  default: {provider: openai, name: fake, base_url: "$fake", input_usd_per_1k: 0.001, output_usd_per_1k: 0.002}
users:
  bench: {role: read, api_key_sha256: $(printf %s "$key" | sha256sum | cut -d' ' -f1)}
audit: {path: $tmp/audit.jsonl}
store: {path: $tmp/state.db}
YAML
"$build/warden" serve --listen 127.0.0.1:0 --policy "$tmp/policy.yaml" --agents "$tmp/agents" --workers 1 \
  2>"$tmp/serve.err" &
pids+=($!)
for _ in $(seq 300); do grep -q "serving http" "$tmp/serve.err" && break; sleep 0.01; done
url=$(grep -o "http://127.0.0.1:[0-9]*" "$tmp/serve.err" | head -1)
for mode in plain stream; do
  for round in 1 2; do
    node bench/facade_client.mjs direct "$fake" none fake "$n" "$mode"
    node bench/facade_client.mjs warden "$url/v1" "$key" plain "$n" "$mode"
  done
done
