-- warden serve over HTTPS (docs/serve.md, TLS): --tls-cert/--tls-key, a CA and a
-- certificate made in the spec with openssl, curl as the client. Hostile clients (plain
-- HTTP on the TLS port, a handshake that never ends, garbage) do not stop it serving.
local T = require("warden.testing")

local KEY = "tls-reader-key"

describe("warden serve over TLS", function()
  local tls, pol, srv
  setup(function()
    tls = T.tls_files()
    pol = T.policy({ users = { reader = { api_key_sha256 = T.sha256(KEY) } } })
    local dir = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(dir, os.getenv("PWD"), dir))
    srv = T.serve({ policy = pol, agents = dir, tls = tls })
  end)
  teardown(function() if srv then srv.stop() end end)

  it("answers HTTPS with a certificate curl verifies against the CA, and runs an agent", function()
    assert.matches("^https://localhost:%d+$", srv.url)
    local code, body = srv.http("GET", "/healthz")
    assert.equal(200, code, T.encode(body))
    local rc, res = srv.http("POST", "/v1/runs", KEY,
      { agent = "lab", input = '[["tool","echo",{"text":"hi"}]]', wait = true })
    assert.equal(200, rc, T.encode(res))
    assert.equal("completed", res.status)
  end)

  it("refuses what is not TLS, and a client that does not trust the CA", function()
    local out, rc = T.sh(("%s -s -m 5 -o /dev/null -w '%%{http_code}' http://127.0.0.1:%s/healthz"):format(T.curl, srv.port))
    assert.are_not.equal(0, rc, "plain HTTP was answered: " .. out)
    out, rc = T.sh(("%s -s -m 5 https://localhost:%s/healthz"):format(T.curl, srv.port))
    assert.equal(60, rc, out) -- curl: the peer's certificate cannot be verified
  end)

  it("keeps serving after garbage, a stalled handshake and a half-open connection", function()
    local port = srv.port
    -- garbage bytes, a TLS ClientHello cut short, a connection that says nothing
    T.sh(("head -c 4096 /dev/urandom | timeout 3 bash -c 'cat > /dev/tcp/127.0.0.1/%s' 2>/dev/null"):format(port))
    T.sh(("printf '\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03' | timeout 2 bash -c 'cat > /dev/tcp/127.0.0.1/%s'")
      :format(port))
    os.execute(("(exec 3<>/dev/tcp/127.0.0.1/%s; sleep 3) >/dev/null 2>&1 &"):format(port))
    for _ = 1, 5 do
      local code = srv.http("GET", "/healthz")
      assert.equal(200, code)
    end
  end)

  it("will not start with a key that does not match the certificate", function()
    local other = T.tls_files()
    local out, rc = T.sh(("%s serve --policy %s --agents agents --listen 127.0.0.1:0 --tls-cert %s --tls-key %s")
      :format(T.bin, pol, tls.cert, other.key))
    assert.equal(2, rc)
    assert.matches("%-%-tls%-key " .. other.key:gsub("%p", "%%%0") .. ": .*key values mismatch %(is it the key of "
      .. "%-%-tls%-cert", out)
  end)
end)
