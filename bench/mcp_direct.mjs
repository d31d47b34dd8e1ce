// mcp_direct.mjs: the official SDK's client calling server-everything's echo directly,
// as bench_mcp.c calls it through warden: N calls, p50 and p99 of each call's time.
//   node bench/mcp_direct.mjs N stdio SERVER_JS | node bench/mcp_direct.mjs N http URL
import { createRequire } from "node:module";
const require = createRequire(new URL("../tools/npm/package.json", import.meta.url));
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

const [n, mode, target] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
const transport = mode === "stdio"
  ? new StdioClientTransport({ command: "node", args: [target, "stdio"], stderr: "ignore" })
  : new StreamableHTTPClientTransport(new URL(target));
const client = new Client({ name: "bench", version: "1" });
await client.connect(transport);
const times = [];
let last = process.hrtime.bigint();
for (let i = 1; i <= n; i++) {
  await client.callTool({ name: "echo", arguments: { message: "bench " + i } });
  const t = process.hrtime.bigint();
  if (i > 1) times.push(Number(t - last) / 1000);
  last = t;
}
times.sort((a, b) => a - b);
const at = (q) => times[Math.floor(times.length * q)];
console.log(`direct   ${mode.padEnd(5)} ${times.length} calls: p50 ${at(0.5).toFixed(1).padStart(8)} us  p99 ${at(0.99).toFixed(1).padStart(8)} us`);
await client.close();
