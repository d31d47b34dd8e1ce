-- Retention, rotation and erasure of the audit log (docs/safety.md, Compliance): files
-- rotated by size keep one chain that `warden audit verify` follows; retention removes
-- (or archives) whole old files and says so in the chain; logs are made 0600; personal
-- fields are sealed under per-user keys and `warden audit erase --user U` makes them read
-- [ERASED] without breaking the chain.
local T = require("warden.testing")
local core = require("warden.core")

local function demo_policy(audit_extra)
  local audit = { rotate = { max_bytes = 8192 } }
  for k, v in pairs(audit_extra or {}) do audit[k] = v end
  local pol, log = T.policy({ audit = audit }, "policies/default.yaml")
  return pol, log
end

local function demo_run(pol, user, query, bg)
  return T.sh(("%s run agents/research_assistant '%s' --user %s --policy %s --json " ..
    "--llm mock:agents/research_assistant/scenarios/demo.yaml%s"):format(T.bin, query, user, pol, bg or ""))
end

local function files_of(log)
  local out = {}
  for name in T.sh("ls -1 " .. log .. "*"):gmatch("[^\n]+") do out[#out + 1] = name end
  return out
end

-- every record of the log, its rotated files first (opts as T.records')
local function all_records(log, opts)
  local out, n = {}, 1
  while T.read(log .. "." .. n) do
    for _, r in ipairs(T.records(log .. "." .. n, opts)) do out[#out + 1] = r end
    n = n + 1
  end
  for _, r in ipairs(T.records(log, opts)) do out[#out + 1] = r end
  return out
end

local function verify(pol)
  return T.sh(("%s audit verify --policy %s"):format(T.bin, pol))
end

describe("audit log rotation", function()
  it("rotates over three files that verify as one chain", function()
    local pol, log = demo_policy()
    for i = 1, 5 do demo_run(pol, "alice", "notes " .. i) end
    local files = files_of(log)
    assert.is_true(#files >= 3, table.concat(files, " "))
    assert.equal(log, files[1])
    assert.equal(log .. ".1", files[2])
    local out, rc = verify(pol)
    assert.equal(0, rc, out)
    assert.matches("intact, %d+ records in %d+ files", out)
    -- each new file begins where the last one ended
    local first = T.records(log .. ".2", { sealed = true })[1]
    local before = T.records(log .. ".1", { sealed = true })
    assert.equal("audit_rotated", first.event)
    assert.equal(before[#before].hash, first.prev_hash)
    assert.equal(before[#before].seq + 1, first.seq)
    assert.equal(log:match("[^/]+$") .. ".1", first.previous_file)
  end)

  it("creates its files readable by their owner alone", function()
    local pol, log = demo_policy()
    for i = 1, 3 do demo_run(pol, "alice", "notes " .. i) end
    for _, f in ipairs(files_of(log)) do
      assert.equal("600", (T.sh("stat -c %a " .. f):gsub("%s+$", "")), f)
    end
  end)

  it("keeps one chain when several processes write and rotate at once", function()
    local pol, log = demo_policy()
    local cmds = {}
    for i = 1, 4 do
      cmds[#cmds + 1] = ("(for k in 1 2 3; do %s run agents/research_assistant 'q%d' --user alice --policy %s " ..
        "--llm mock:agents/research_assistant/scenarios/demo.yaml >/dev/null 2>&1; done) &"):format(T.bin, i, pol)
    end
    T.sh(table.concat(cmds, " ") .. " wait")
    local out, rc = verify(pol)
    assert.equal(0, rc, out)
    local n = 0
    for _, f in ipairs(files_of(log)) do
      for _, r in ipairs(T.records(f, { sealed = true })) do if r.event == "run_finished" then n = n + 1 end end
    end
    assert.equal(12, n)
  end)

  it("finds a rotated file removed by hand, or a record edited in an old file", function()
    local pol, log = demo_policy()
    for i = 1, 5 do demo_run(pol, "alice", "notes " .. i) end
    os.execute("cp " .. log .. ".2 " .. log .. ".2.bak")
    T.write(log .. ".2", (T.read(log .. ".2"):gsub('"latency_ms":%d+', '"latency_ms":999999', 1)))
    local out, rc = verify(pol)
    assert.equal(1, rc, out)
    assert.matches("%.jsonl%.2:%d+: hash does not match", out)
    os.execute("mv " .. log .. ".2.bak " .. log .. ".2")
    os.remove(log .. ".1")
    out, rc = verify(pol)
    assert.equal(1, rc, out)
    assert.matches("no audit_retention record says it was removed", out)
  end)
end)

describe("audit log retention", function()
  it("removes the oldest files past max_files, archives them, and records it in the chain", function()
    local pol, log = demo_policy({ retention = { max_files = 2, archive = true } })
    for i = 1, 9 do demo_run(pol, "alice", "notes " .. i) end
    local files = files_of(log)
    local gz, plain = 0, 0
    for _, f in ipairs(files) do
      if f:match("%.gz$") then gz = gz + 1 elseif f ~= log then plain = plain + 1 end
    end
    assert.equal(2, plain)
    assert.is_true(gz >= 1)
    local out, rc = verify(pol)
    assert.equal(0, rc, out)
    -- the record names each removed file with its last hash, and the archive holds it whole
    local removed
    for _, f in ipairs(files) do
      if not f:match("%.gz$") then
        for _, r in ipairs(T.records(f, { sealed = true })) do
          if r.event == "audit_retention" then removed = removed or r.removed[1] end
        end
      end
    end
    assert.truthy(removed, "no audit_retention record")
    assert.equal(removed.file .. ".gz", removed.archived_to)
    local lines = T.sh("zcat " .. removed.archived_to)
    local last = T.decode(lines:match("([^\n]+)\n?$"))
    assert.equal(removed.last_hash, last.hash)
    assert.equal(removed.last_seq, last.seq)
    assert.equal("600", (T.sh("stat -c %a " .. removed.archived_to):gsub("%s+$", "")))
  end)

  it("deletes them when archive is off", function()
    local pol, log = demo_policy({ retention = { max_files = 1 } })
    for i = 1, 6 do demo_run(pol, "alice", "notes " .. i) end
    for _, f in ipairs(files_of(log)) do assert.is_nil(f:match("%.gz$"), f) end
    assert.equal(2, #files_of(log))
    local out, rc = verify(pol)
    assert.equal(0, rc, out)
  end)

  it("is refused without rotation", function()
    local ok, errs = core.policy_check(T.policy({ audit = { retention = { max_files = 3 } } }))
    assert.is_false(ok)
    assert.matches("audit.retention removes rotated files: it needs audit.rotate", table.concat(errs, "\n"))
  end)
end)

describe("erasure of personal data", function()
  local function run_id_of(out) return T.decode(out).run_id end

  it("seals the personal fields; erase --user bob makes bob's read [ERASED], alice's stay, the chain intact",
    function()
      local pol, log = demo_policy()
      local a = run_id_of(demo_run(pol, "alice", "alice asks about AI safety"))
      local b = run_id_of(demo_run(pol, "bob", "bob asks about AI safety"))
      for _ = 1, 3 do demo_run(pol, "alice", "more from alice") end -- rotates
      -- written sealed: neither question is in any file as text
      for _, f in ipairs(files_of(log)) do
        local raw = T.read(f)
        assert.is_nil(raw:find("asks about", 1, true), f)
        assert.is_nil(raw:find("Our notes on AI safety say", 1, true), f)
      end
      -- warden's own readers open them
      local out = T.sh(("%s audit trace %s --policy %s"):format(T.bin, b, pol))
      assert.matches("asked: bob asks about AI safety", out, 1, true)
      out = T.sh(("%s audit erase --user bob --policy %s"):format(T.bin, pol))
      assert.matches("bob: 1 key destroyed", out, 1, true)
      out = T.sh(("%s audit trace %s --policy %s"):format(T.bin, b, pol))
      assert.matches("asked: [ERASED]", out, 1, true)
      assert.matches("final answer: [ERASED]", out, 1, true)
      out = T.sh(("%s audit trace %s --policy %s"):format(T.bin, a, pol))
      assert.matches("asked: alice asks about AI safety", out, 1, true)
      assert.matches("final answer: Our notes on AI safety say", out, 1, true)
      local vout, rc = verify(pol)
      assert.equal(0, rc, vout)
      -- the erasure is in the chain
      out = T.sh(("%s audit query --policy %s --event personal_data_erased"):format(T.bin, pol))
      local rec = T.decode(out:match("{[^\n]+"))
      assert.equal("bob", rec.user_id)
      assert.equal(1, rec.keys_destroyed)
      -- bob's next run gets a new key: readable again
      local b2 = run_id_of(demo_run(pol, "bob", "bob comes back"))
      out = T.sh(("%s audit trace %s --policy %s"):format(T.bin, b2, pol))
      assert.matches("asked: bob comes back", out, 1, true)
    end)

  it("leaves nothing of the key in the store's files after the erasure", function()
    if T.redis_mode() then return end -- a SQLite file's pages; Redis: docs/scale-out.md, Erasure
    local pol = demo_policy()
    demo_run(pol, "bob", "the secret question of bob")
    local store = T.store_of(pol)
    local key = T.sh(("sqlite3 %s \"SELECT hex(key) FROM audit_keys WHERE user_id = 'bob'\""):format(store))
      :gsub("%s+$", "")
    assert.equal(64, #key)
    T.sh(("%s audit erase --user bob --policy %s"):format(T.bin, pol))
    local raw = T.sh(("cat %s %s-wal 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'"):format(store, store))
    assert.is_nil(raw:upper():find(key, 1, true))
    assert.equal("600", (T.sh("stat -c %a " .. store):gsub("%s+$", "")))
  end)

  it("seals tool arguments and results when the policy says so, per tool", function()
    local pol, log = T.policy({ audit = { personal_fields = { "query", "tool_args:search_documents",
      "tool_result_summary" } } }, "policies/default.yaml")
    demo_run(pol, "alice", "find it")
    local calls = {}
    for _, r in ipairs(all_records(log, { sealed = true })) do
      if r.event == "tool_call" then calls[r.tool_name] = r end
    end
    assert.matches("^v1:", calls.search_documents.tool_args)
    assert.matches("^v1:", calls.search_documents.tool_result_summary)
    assert.equal("table", type(calls.summarize.tool_args)) -- not named for summarize
    assert.matches("^v1:", calls.summarize.tool_result_summary)
    local opened
    for _, r in ipairs(all_records(log)) do opened = opened or (r.event == "tool_call" and r) or nil end
    assert.equal("AI safety", opened.tool_args.query)
  end)

  it("attack: a sealed value moved to another record or field does not open", function()
    local pol, log = demo_policy()
    local a = run_id_of(demo_run(pol, "alice", "first question"))
    demo_run(pol, "alice", "second question")
    local recs = all_records(log, { sealed = true })
    local q1, q2
    for _, r in ipairs(recs) do
      if r.event == "run_started" then if r.run_id == a then q1 = r else q2 = r end end
    end
    q2.query = q1.query -- the first run's sealed question pasted into the second's record
    local opened = core.unseal({ T.encode(q2) }, T.store_of(pol))
    assert.equal("[UNREADABLE]", T.decode(opened[1]).query)
    for _, r in ipairs(all_records(log)) do
      if r.event == "run_finished" then assert.matches("^Our notes", r.final_answer) end
    end
  end)

  it("attack: hostile sealed records read as markers, never crash the reader", function()
    local pol = demo_policy()
    demo_run(pol, "alice", "make the store")
    local hostile = {
      '{"event":"run_started","sealed":"query","query":"v1:x"}',
      '{"event":"run_started","sealed":[1,null,{}],"query":5}',
      '{"event":"run_started","run_id":"r","sealed":["query"],"query":"v1:0123456789abcdef:!!!not base64"}',
      '{"event":"run_started","run_id":"r","sealed":["query"],"query":"v1:0123456789abcdef:' .. ("A"):rep(40) .. '"}',
      '{"event":"run_started","sealed":["query"],"query":"v1:short"}',
      '{"event":"run_started","sealed":["query","query"],"query":"plain"}',
    }
    local opened = core.unseal(hostile, T.store_of(pol))
    assert.equal(#hostile, #opened)
    assert.equal("v1:x", T.decode(opened[1]).query)
    assert.equal(5, T.decode(opened[2]).query)
    assert.equal("[SEALED]", T.decode(opened[3]).query) -- a key this store never made
    assert.equal("[SEALED]", T.decode(opened[4]).query)
    assert.equal("[UNREADABLE]", T.decode(opened[5]).query)
    assert.equal("[UNREADABLE]", T.decode(opened[6]).query)
  end)

  it("refuses a personal field it cannot seal", function()
    local ok, errs = core.policy_check(T.policy({ audit = { personal_fields = { "run_id" } } }))
    assert.is_false(ok)
    assert.matches("'run_id' is not a field that can be sealed", table.concat(errs, "\n"))
  end)
end)
