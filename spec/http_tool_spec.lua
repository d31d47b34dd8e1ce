-- ctx:http for tools: allow-listed hosts only, http(s) only, no header injection, the
-- tool's timeout, retries, and a capped body.
local T = require("warden.testing")

local srv = T.fakellm()

local function fetch(args, overrides)
  return T.lab({ { "tool", "fetch", args } }, { policy_overrides = overrides })
end

describe("ctx:http", function()
  it("reaches an allowed host and returns status, headers and body", function()
    local key = T.key("ok")
    local _, steps, audit = fetch({ url = srv.url("key=" .. key) .. "/echo", method = "POST", body = "hello" })
    assert.equal(200, steps[1].status)
    assert.equal("application/json", steps[1].content_type)
    local echoed = T.decode(steps[1].body)
    assert.equal("POST", echoed.method)
    assert.equal("hello", echoed.body)
    local req = T.events(audit, "http_request")[1]
    assert.equal(200, req.status)
    assert.equal("fetch", req.tool_name)
  end)

  it("refuses a host outside allowed_hosts, audited, without a request", function()
    local url = ("http://localhost:%s/%s/x"):format(srv.port, "key=" .. T.key("deny"))
    local _, steps, audit = fetch({ url = url })
    assert.matches("host 'localhost' is not in the allowed_hosts of tool 'fetch'", steps[1].error)
    assert.equal(1, #T.events(audit, "guardrail_violation"))
  end)

  it("accepts host:port and *.domain entries", function()
    local key = T.key("hp")
    local _, steps = fetch({ url = srv.url("key=" .. key) .. "/x" },
      { tools = { fetch = { allowed_hosts = { "*.example.com", "127.0.0.1:" .. srv.port } } } })
    assert.equal(200, steps[1].status)
    local _, steps2 = fetch({ url = srv.url("key=" .. key) .. "/x" },
      { tools = { fetch = { allowed_hosts = { "127.0.0.1:1" } } } })
    assert.matches("not in the allowed_hosts", steps2[1].error)
  end)

  it("is refused to a tool with no allowed_hosts", function()
    local _, steps = fetch({ url = srv.url() .. "/x" }, { tools = { fetch = { allowed_hosts = T.NONE } } })
    assert.matches("has no allowed_hosts", steps[1].error)
  end)

  for _, url in ipairs({ "file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "not a url",
                         "http://127.0.0.1@evil.example/x" }) do
    it("refuses " .. url, function()
      local _, steps = fetch({ url = url })
      assert.is_truthy(steps[1].error)
      assert.is_nil(steps[1].status)
    end)
  end

  it("refuses header injection", function()
    local _, steps = fetch({ url = srv.url() .. "/x", headers = { ["X-A"] = "1\r\nX-Injected: yes" } })
    assert.matches("header", steps[1].error)
  end)

  it("does not follow redirects (they could leave the allow-list)", function()
    local key = T.key("redir")
    local _, steps = fetch({ url = srv.url("key=" .. key .. ",mode=status,status=302") .. "/x" })
    assert.equal(302, steps[1].status)
    assert.equal(1, srv.requests(key))
  end)

  it("caps the body", function()
    local key = T.key("bigtool")
    local _, steps = fetch({ url = srv.url("key=" .. key .. ",mode=big") .. "/x" })
    assert.matches("larger than 1048576 bytes", steps[1].error)
  end)

  it("is for tools only: the agent's ctx has no http", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[local ctx = ...
      return tostring(ctx.http)]] }
    assert.equal("nil", res.result)
  end)
end)
