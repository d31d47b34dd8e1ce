-- The state store as an interface (docs/architecture.md, The state store): callers go
-- through store.h's functions, each dispatched through the backend's table of
-- functions (backend.h); SQLite is the first backend and no SQL lives outside it.
local T = require("warden.testing")

-- every engine source file but the tests, as {path = text}
local function sources()
  local out = {}
  local list = io.popen("find engine -name '*.[ch]' -not -path 'engine/test/*' | sort")
  for path in list:lines() do out[path] = T.read(path) end
  list:close()
  return out
end

local function backend_of(path) return path:match("^engine/state/sql[%w_]*%.[ch]$") ~= nil end
-- the Redis backend's files, whose commands (Redis's SELECT) are not SQL
local function redis_of(path) return path:match("^engine/state/redis[%w_]*%.[ch]$") ~= nil end

-- the members of struct wd_store_backend that are functions
local function members()
  local text = T.read("engine/state/backend.h")
  local body = text:match("typedef struct wd_store_backend {(.-)} wd_store_backend;")
  assert.truthy(body, "backend.h has no wd_store_backend")
  local names = {}
  for name in body:gmatch("%(%*([%w_]+)%)") do names[#names + 1] = name end
  return names
end

describe("state store interface", function()
  it("keeps SQLite and SQL inside the SQLite backend", function()
    local found = {}
    for path, text in pairs(sources()) do
      if not backend_of(path) then
        local n = 0
        for line in (text .. "\n"):gmatch("(.-)\n") do
          n = n + 1
          local sql = line:match('"[^"]*%f[%w](SELECT)%f[%W]') or line:match('"[^"]*%f[%w](INSERT INTO)%f[%W]')
            or line:match('"[^"]*%f[%w](DELETE FROM)%f[%W]') or line:match('"[^"]*%f[%w](CREATE TABLE)%f[%W]')
            or line:match('"[^"]*%f[%w](UPDATE) [%w_]+ SET')
          if redis_of(path) then sql = nil end
          if line:find("sqlite3", 1, true) or sql then found[#found + 1] = path .. ":" .. n .. ": " .. line end
        end
      end
    end
    table.sort(found)
    assert.same({}, found)
  end)

  it("dispatches every operation of the backend table through one function of store.h", function()
    local h, c = T.read("engine/state/store.h"), T.read("engine/state/store.c")
    local names = members()
    assert.is_true(#names >= 25, "only " .. #names .. " operations")
    for _, name in ipairs(names) do
      if name ~= "close" and name ~= "error" and name ~= "now" then
        assert.truthy(h:find("wd_store_" .. name .. "%("), "store.h declares no wd_store_" .. name)
        assert.truthy(c:find("s%->be%->" .. name .. "%("), "store.c does not dispatch " .. name)
      end
    end
  end)

  it("has the SQLite backend fill every member of the table", function()
    local text = T.read("engine/state/sqlite.c")
    for _, name in ipairs(members()) do
      assert.truthy(text:find("%." .. name .. " = wd_sq_" .. name .. ","), "sqlite.c leaves " .. name .. " empty")
    end
  end)

  it("asks every operation of wd_store_ask on Redis without waiting: none falls back to a waiting call", function()
    local kinds, text = {}, T.read("engine/state/redis.c")
    local enum = T.read("engine/state/store.h"):match("enum {\n    WD_SOP_LEASE_APPLY.-};")
    for k in enum:gmatch("(WD_SOP_[%u_]+)") do kinds[#kinds + 1] = k end
    assert.is_true(#kinds >= 10, #kinds .. " kinds")
    for _, k in ipairs(kinds) do
      assert.truthy(text:find("%[" .. k .. "%] = wd_rd_[%w_]+_ask"), "redis.c asks " .. k .. " waiting")
    end
  end)

  it("has the Redis backend fill every member of the table", function()
    local text = T.read("engine/state/redis.c")
    for _, name in ipairs(members()) do
      assert.truthy(text:find("%." .. name .. " = wd_rd_" .. name .. ","), "redis.c leaves " .. name .. " empty")
    end
  end)

  it("keeps its rows in the SQLite file the policy names, seen by every process", function()
    local db = T.tmpfile(".db")
    local pol = T.policy({ store = { path = db } })
    local out, rc = T.sh(("%s kill agent-x --reason spec --by ops --policy %s 2>&1"):format(T.bin, pol))
    assert.equal(0, rc, out)
    out, rc = T.sh(("%s kill --json --policy %s 2>&1"):format(T.bin, pol))
    assert.equal(0, rc, out)
    assert.matches('"agent%-x"', out)
    assert.equal("agent-x|ops|spec", (T.sh(("sqlite3 %s 'SELECT agent, by, reason FROM kills'"):format(db)):gsub("%s+$", "")))
    local tables = T.sh(("sqlite3 %s .tables"):format(db))
    for _, t in ipairs({ "agent_health", "approvals", "breakers", "cache", "detector_store", "kills", "leases", "rate",
                         "spend" }) do
      assert.matches("%f[%w_]" .. t .. "%f[^%w_]", tables)
    end
  end)
end)
