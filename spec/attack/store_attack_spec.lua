-- Attacks on the state store through what scripts and people may write into it: a
-- detector's keys and values, a person's reason for a decision, an operator's reason
-- for a kill. Every value is bound, never spliced into SQL, and a key is the whole key.
local T = require("warden.testing")

local function sql(db, q) return (T.sh(("sqlite3 %s %q"):format(db, q)):gsub("%s+$", "")) end

describe("attack: the state store", function()
  it("keeps a detector's keys and values full of SQL as data, and refuses a key with a NUL byte", function()
    local db = T.tmpfile(".db")
    local pol = T.policy({ store = { path = db }, detectors = { store_keys = { enforce = true } } })
    local out, rc = T.sh(("%s kill other --reason keep --by ops --policy %s 2>&1"):format(T.bin, pol))
    assert.equal(0, rc, out)
    local _, _, audit = T.lab({ { "tool", "echo", { x = 1 } } }, { policy = pol })
    local v
    for _, r in ipairs(T.events(audit, "detector_verdict")) do
      if r.detector == "store_keys" then v = r.details end
    end
    assert.truthy(v, "no verdict of store_keys")
    assert.equal(v.total, v.same)
    -- "a\0b" would be the key "a" to C: it is refused, and "a" keeps its value
    assert.is_true(v.nul_refused, v.nul_error)
    assert.matches("NUL", v.nul_error)
    assert.equal("plain", v.plain)
    assert.equal("other", sql(db, "SELECT agent FROM kills"))
    assert.equal("5", sql(db, "SELECT count(*) FROM detector_store"))
  end)

  it("records a person's reason and an operator's reason verbatim, changing no other row", function()
    local db = T.tmpfile(".db")
    local pol = T.policy({ store = { path = db },
                           approvals = { routes = { high = { "lead", "director" } } } })
    local evil = "x'); UPDATE approvals SET status = 'approved'; DELETE FROM kills; --"
    local out, rc = T.sh(("%s kill other --reason %q --by ops --policy %s 2>&1"):format(T.bin, evil, pol))
    assert.equal(0, rc, out)
    local _, out1 = T.start_lab(pol, '[["tool","approval_tool",{"note":"one"}]]')
    local first = T.pending(pol)
    local _, out2 = T.start_lab(pol, '[["tool","approval_tool",{"note":"two"}]]')
    local second
    for _ = 1, 250 do
      local l = T.decode((T.approvals(pol, "list --json")))
      if #l == 2 then second = l[1].id == first.id and l[2] or l[1] break end
      os.execute("sleep 0.02")
    end
    assert.truthy(second, "no second request")
    local msg
    msg, rc = T.approvals(pol, ("reject %s --by director --reason %q"):format(first.id, evil))
    assert.equal(0, rc, msg)
    assert.equal("completed", T.result_of(out1).status)
    assert.equal("rejected", sql(db, ("SELECT status FROM approvals WHERE id = '%s'"):format(first.id)))
    assert.equal(evil, sql(db, ("SELECT reason FROM approvals WHERE id = '%s'"):format(first.id)))
    assert.equal("pending", sql(db, ("SELECT status FROM approvals WHERE id = '%s'"):format(second.id)))
    assert.equal("other|" .. evil, sql(db, "SELECT agent, reason FROM kills"))
    msg, rc = T.approvals(pol, ("reject %s --by director --reason done"):format(second.id))
    assert.equal(0, rc, msg)
    assert.equal("completed", T.result_of(out2).status)
  end)
end)
