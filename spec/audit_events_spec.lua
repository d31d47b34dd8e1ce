-- The audit log's events (docs/safety.md, Audit schema): the engine names every event by a
-- constant of engine/audit/events.h, and the table of events in docs/safety.md lists the
-- same names, no more and no fewer. A record the engine writes carries one of them.
local T = require("warden.testing")

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function missing(a, b)
  local out = {}
  for k in pairs(a) do if not b[k] then out[#out + 1] = k end end
  table.sort(out)
  return out
end

describe("audit events", function()
  local code = {}
  for name in T.read("engine/audit/events.c"):gmatch('%[WD_AE_[%u_]+%] = "([%l_]+)"') do code[#code + 1] = name end
  local doc = {}
  local text = T.read("docs/safety.md")
  local table_text = text:match("The events, each with.-\n(|.-)\n\n")
  for row in (table_text or ""):gmatch("[^\n]+") do
    local first = row:match("^| ([^|]+) |")
    if first then
      for name in first:gmatch("`([%l_]+)`") do doc[#doc + 1] = name end
    end
  end

  it("are the same in the code and in docs/safety.md", function()
    assert.is_true(#code >= 30, "only " .. #code .. " events in events.c")
    local c, d = set_of(code), set_of(doc)
    assert.same({}, missing(c, d), "in the code, not in docs/safety.md")
    assert.same({}, missing(d, c), "in docs/safety.md, not in the code")
  end)

  it("are written by their constant only: no writer spells one out", function()
    local known = set_of(code)
    local p = io.popen("find engine -name '*.c' -not -path 'engine/test/*' -not -path 'engine/fuzz/*' | sort")
    for path in p:lines() do
      local src = T.read(path)
      for name in src:gmatch('"event",%s*"([%l_]+)"') do -- a list of field names may hold "event"
        assert.is_nil(known[name], path .. " writes the event " .. name .. " by its name")
      end
      assert.is_nil(src:find('wd_run_event%([^,]+,%s*"'), path .. " writes an event by its name")
    end
    p:close()
  end)

  it("are all a real run writes", function()
    local res, _, audit = T.lab('[["tool","echo",{"text":"hi"}],["tool","undeclared",{}],["llm"]]')
    assert.equal("completed", res.status)
    local known, seen = set_of(code), 0
    for _, rec in ipairs(T.records(audit)) do
      seen = seen + 1
      assert.is_true(known[rec.event] or false, "unlisted event " .. tostring(rec.event))
    end
    assert.is_true(seen >= 5)
  end)
end)

describe("audit event fields", function()
  -- events.c: each event's own fields, by name
  local src = T.read("engine/audit/events.c")
  local name_of = {}
  for const, name in src:gmatch('%[(WD_AE_[%u_]+)%] = "([%l_]+)"') do name_of[const] = name end
  local code = {}
  for const, list in src:gmatch("%[(WD_AE_[%u_]+)%]%s*=%s*FIELDS_OF%((.-)%)") do
    local fields = {}
    for f in list:gmatch('"([%l_]+)"') do fields[#fields + 1] = f end
    code[name_of[const]] = fields
  end
  -- docs/safety.md: the fields column of each row of the table of events
  local rows = {}
  local table_text = T.read("docs/safety.md"):match("The events, each with.-\n(|.-)\n\n") or ""
  for row in table_text:gmatch("[^\n]+") do
    local cells = {}
    for cell in row:gmatch("|([^|]*)") do cells[#cells + 1] = cell end
    local events = {}
    for e in (cells[1] or ""):gmatch("`([%l_]+)`") do events[#events + 1] = e end
    if #events > 0 and events[1] ~= "event" then
      local fields = {}
      for f in (cells[3] or ""):gmatch("`([%l_]+)`") do fields[#fields + 1] = f end
      rows[#rows + 1] = { events = events, fields = fields }
    end
  end

  it("are defined in events.c for every event", function()
    for _, name in pairs(name_of) do assert.truthy(code[name], name .. " has no fields in events.c") end
  end)

  it("are the same in events.c and in docs/safety.md, row by row", function()
    assert.is_true(#rows >= 25, "only " .. #rows .. " rows")
    for _, row in ipairs(rows) do
      local union = {}
      for _, e in ipairs(row.events) do
        assert.truthy(code[e], e .. " is in docs/safety.md, not in events.c")
        for _, f in ipairs(code[e]) do union[f] = true end
      end
      local doc = set_of(row.fields)
      local label = table.concat(row.events, ", ")
      assert.same({}, missing(union, doc), "fields of " .. label .. " in events.c, not in docs/safety.md")
      assert.same({}, missing(doc, union), "fields of " .. label .. " in docs/safety.md, not in events.c")
    end
  end)

  it("hold every record of a real run (WARDEN_CHECK_RECORDS aborts on a stray member)", function()
    local pol, audit = T.policy()
    local out, rc = T.sh(("WARDEN_CHECK_RECORDS=1 %s run spec/fixtures/lab '%s' --user reader"
      .. " --llm mock:spec/fixtures/no_model.yaml"
      .. " --json --policy %s 2>&1"):format(T.bin, '[["tool","echo",{"text":"hi"}],["tool","undeclared",{}],["llm"]]',
      pol))
    assert.equal(0, rc, out)
    assert.is_true(#T.records(audit) >= 5)
  end)
end)
