// facade_client.mjs: the official `openai` client asking a model N times in a row, as the
// OpenAI facade benchmark needs it (bench/facade_bench.sh): the fake model directly, or a
// warden agent through /v1/chat/completions. Prints p50 and p99 of the whole request and,
// streaming, of the time to the first token.
//   node bench/facade_client.mjs LABEL BASE_URL KEY MODEL N plain|stream
import { createRequire } from "node:module";
const require = createRequire(new URL("../tools/npm/package.json", import.meta.url));
const OpenAI = require("openai").default ?? require("openai");

const [label, baseURL, key, model, n, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: key, maxRetries: 0 });
const messages = [{ role: "user", content: "count to twenty" }];
const whole = [], first = [];
for (let i = 0; i <= Number(n); i++) {
  const t0 = process.hrtime.bigint();
  let t1 = 0n, text = "";
  if (mode === "stream") {
    const s = await client.chat.completions.create({ model, messages, stream: true });
    for await (const c of s) {
      const d = c.choices[0] && c.choices[0].delta && c.choices[0].delta.content;
      if (d) {
        if (!t1) t1 = process.hrtime.bigint();
        text += d;
      }
    }
  } else {
    const r = await client.chat.completions.create({ model, messages });
    text = r.choices[0].message.content;
  }
  const t2 = process.hrtime.bigint();
  if (!text) throw new Error("no answer");
  if (i === 0) continue; // the first request opens the connection
  whole.push(Number(t2 - t0) / 1000);
  if (t1) first.push(Number(t1 - t0) / 1000);
}
const q = (v, p) => v.slice().sort((a, b) => a - b)[Math.floor(v.length * p)];
const fmt = (v) => `p50 ${q(v, 0.5).toFixed(0).padStart(6)} us  p99 ${q(v, 0.99).toFixed(0).padStart(6)} us`;
console.log(`${label.padEnd(7)} ${mode.padEnd(6)} ${whole.length} requests: whole ${fmt(whole)}` +
            (first.length ? `   first token ${fmt(first)}` : ""));
