-- The dashboard (GET /) in headless Chromium, driven through chromedriver's WebDriver
-- API: it loads, shows a run waiting for approval, approves it by a click, and the run
-- finishes. Debian packages chromium and chromium-driver (make deps installs them).
local T = require("warden.testing")
local json = require("cjson")

local ADMIN, READER = "dash-admin-key", "dash-reader-key"

-- one WebDriver command: method, path under the driver, body table; the decoded value
local function wd(base, method, path, body)
  local args = ("%s -s -m 60 -X %s %s%s"):format(T.curl, method, base, path)
  if body then
    args = args .. " -H 'Content-Type: application/json' --data-binary @"
      .. T.write(T.tmpfile(".json"), json.encode(body))
  end
  local out = T.sh(args)
  local ok, v = pcall(json.decode, out)
  assert(ok, "webdriver answered: " .. out)
  return v.value
end

local wait_for = T.wait_for

describe("the dashboard", function()
  local srv, driver, driver_pid, session

  setup(function()
    local pol = T.policy({
      users = { admin = { api_key_sha256 = T.sha256(ADMIN) }, reader = { api_key_sha256 = T.sha256(READER) } },
      approvals = { expiry = { low = "60s", normal = "60s", high = "60s", critical = "60s" } },
    })
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(agents, os.getenv("PWD"), agents))
    srv = T.serve({ policy = pol, agents = agents })
    -- a port of its own: tried until one is free (chromedriver exits when it is taken)
    local log, ready
    math.randomseed(os.time() + tonumber(srv.port))
    for _ = 1, 10 do
      local port = math.random(20000, 30000)
      log = T.tmpfile(".log")
      -- the browser is not ours to sanitize: make asan's preloaded libasan stays out of it
      local h = io.popen(("env -u LD_PRELOAD chromedriver --port=%d >%s 2>&1 & echo $!"):format(port, log))
      driver_pid = h:read("l")
      h:close()
      driver = "http://127.0.0.1:" .. port
      for _ = 1, 500 do
        ready = (T.sh(T.curl .. " -s -m 2 " .. driver .. "/status")):match('"ready":%s*true')
        if ready or (T.read(log) or ""):match("Exiting") then break end
        os.execute("sleep 0.02")
      end
      if ready then break end
    end
    assert(ready, "chromedriver did not start: " .. tostring(T.read(log)))
    local s = wd(driver, "POST", "/session", { capabilities = { alwaysMatch = { ["goog:chromeOptions"] = {
      binary = "/usr/bin/chromium",
      args = { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        "--user-data-dir=" .. T.tmpfile("-chrome") },
    } } } })
    session = "/session/" .. assert(s.sessionId, "no browser session: " .. json.encode(s))
  end)

  teardown(function()
    if session then wd(driver, "DELETE", session) end
    if driver_pid then os.execute("kill " .. driver_pid) end
    if srv then srv.stop() end
  end)

  local function find(css)
    local v = wd(driver, "POST", session .. "/element", { using = "css selector", value = css })
    if type(v) == "table" and v.error then return nil end
    local _, id = next(v) -- {"element-6066-...": id}
    return id
  end

  -- the text of the element css selects, or nil (absent, or redrawn between the two calls:
  -- the page redraws every second)
  local function text(css)
    local el = find(css)
    local t = el and wd(driver, "GET", session .. "/element/" .. el .. "/text")
    return type(t) == "string" and t or nil
  end

  it("approves a pending request by a click, and the run finishes", function()
    local code, body = srv.http("POST", "/v1/runs", READER,
      { agent = "lab", input = json.encode({ { "tool", "approval_tool", { why = "dashboard" } } }) })
    assert.equal(202, code)
    local run = body.run_id
    wd(driver, "POST", session .. "/url", { url = srv.url .. "/" })
    assert.equal("warden dashboard", wd(driver, "GET", session .. "/title"))
    local key = assert(find("#key"))
    wd(driver, "POST", session .. "/element/" .. key .. "/value", { text = ADMIN })
    wd(driver, "POST", session .. "/element/" .. assert(find("#connect")) .. "/click", {})
    -- the run shows, waiting; its request shows with its buttons
    wait_for(function() return find("#run-" .. run) end, "the run in the page")
    local req
    wait_for(function()
      local _, l = srv.http("GET", "/v1/approvals", ADMIN)
      req = l[1]
      return req
    end, "the approval request")
    local button = wait_for(function() return find("#approve-" .. req.id) end, "the approve button")
    local row = wait_for(function() return text("#approval-" .. req.id) end, "the request's row")
    assert.truthy(row:match("approval_tool"))
    assert.truthy(row:match("reader"))
    assert.truthy(row:match("expires in %d+ s") or row:match("expires in 1 min 0 s"), row) -- 60 s expiry
    -- the run is shown waiting for that request, not "running"
    local shown = wait_for(function() return (text("#run-" .. run) or ""):match("waiting for approval of %S+") end,
      "the run shown waiting")
    assert.equal("waiting for approval of approval_tool", shown)
    wd(driver, "POST", session .. "/element/" .. button .. "/click", {})
    -- the run finishes, as the API and the page both say
    local res = wait_for(function()
      local _, r = srv.http("GET", "/v1/runs/" .. run, ADMIN)
      return r.status == "completed" and r
    end, "the run to finish")
    assert.equal(true, res.result.tool_calls[1].success)
    wait_for(function() return (text("#run-" .. run) or ""):match("completed") end, "the page to show it completed")
    -- the page says who decided: the admin whose key it holds
    local _, all = srv.http("GET", "/v1/approvals?all=1", ADMIN)
    assert.equal("approved", all[1].status)
    assert.equal("admin", all[1].decided_by or (all[1].approved_by or {})[1])
    -- a reader's key gets the refusal in the page, not the data
    wd(driver, "POST", session .. "/element/" .. key .. "/clear", {})
    wd(driver, "POST", session .. "/element/" .. key .. "/value", { text = READER })
    wd(driver, "POST", session .. "/element/" .. assert(find("#connect")) .. "/click", {})
    wait_for(function() return (text("#error") or ""):match("admin") end, "the refusal shown")
  end)

  -- every button of the page inside the viewport and inside every box that clips it; the
  -- page no wider than the window
  local FIT = [[
    const out = { width: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth, bad: [],
      buttons: 0 };
    for (const b of document.querySelectorAll("button")) {
      out.buttons++;
      const r = b.getBoundingClientRect();
      let ok = r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= out.width + 0.5;
      for (let p = b.parentElement; ok && p; p = p.parentElement) {
        const s = getComputedStyle(p);
        if (s.overflowX !== "visible") {
          const q = p.getBoundingClientRect();
          ok = r.left >= q.left - 0.5 && r.right <= q.right + 0.5;
        }
      }
      if (!ok) out.bad.push((b.id || b.textContent) + " at " + Math.round(r.left) + ".." + Math.round(r.right));
    }
    return out;]]

  it("shows every button at 1280 and 390 px wide, durations in hours and minutes (screenshots)", function()
    local pol4h = T.policy({ users = { admin = { api_key_sha256 = T.sha256(ADMIN) },
      reader = { api_key_sha256 = T.sha256(READER) } }, approvals = { expiry = { high = "4h" } } })
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(agents, os.getenv("PWD"), agents))
    local srv4 = T.serve({ policy = pol4h, agents = agents })
    local ids = {}
    for i = 1, 2 do
      local _, body = srv4.http("POST", "/v1/runs", READER,
        { agent = "lab", input = json.encode({ { "tool", "approval_tool", { why = ("a longer reason, number %d, to "
          .. "show how arguments wrap when the window is narrow"):format(i) } } }) })
      ids[#ids + 1] = body.run_id
    end
    wd(driver, "POST", session .. "/url", { url = srv4.url .. "/" })
    local key = assert(find("#key"))
    wd(driver, "POST", session .. "/element/" .. key .. "/clear", {})
    wd(driver, "POST", session .. "/element/" .. key .. "/value", { text = ADMIN })
    wd(driver, "POST", session .. "/element/" .. assert(find("#connect")) .. "/click", {})
    wait_for(function() return #(select(2, srv4.http("GET", "/v1/approvals", ADMIN))) == 2 end, "two requests")
    local req = select(2, srv4.http("GET", "/v1/approvals", ADMIN))[1]
    wait_for(function() return find("#reject-" .. req.id) end, "the reject button")
    local row = text("#approval-" .. req.id) or ""
    assert.truthy(row:match("expires in [34] h %d+ min"), row)
    os.execute("mkdir -p " .. T.build .. "/screenshots")
    for _, width in ipairs({ 1280, 390 }) do
      wd(driver, "POST", session .. "/window/rect", { width = width, height = 900 })
      local fit = wait_for(function()
        local f = wd(driver, "POST", session .. "/execute/sync", { script = FIT, args = { 0 } })
        assert(f.buttons, T.encode(f))
        return f.buttons >= 5 and f.width <= width and f
      end, "the page at " .. width)
      assert.same({}, fit.bad, width .. " px: buttons outside what shows")
      assert.is_true(fit.scroll <= fit.width, ("%d px: the page is %d px wide"):format(width, fit.scroll))
      local png = wd(driver, "GET", session .. "/screenshot")
      local file = ("%s/screenshots/dashboard-%d.png"):format(T.build, width)
      local b64 = T.write(T.tmpfile(".b64"), png)
      assert.equal(0, select(2, T.sh(("base64 -d %s > %s"):format(b64, file))))
      assert.matches("^\137PNG", T.read(file))
      print(("\n    %s: %d buttons, all shown"):format(file, fit.buttons))
    end
    for _, id in ipairs(ids) do
      local _, l = srv4.http("GET", "/v1/approvals", ADMIN)
      for _, r in ipairs(l) do if r.run_id == id then srv4.http("POST", "/v1/approvals/" .. r.id .. "/reject", ADMIN,
        { reason = "screenshot taken" }) end end
    end
    srv4.stop()
  end)
end)
