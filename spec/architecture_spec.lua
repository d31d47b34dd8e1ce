-- docs/architecture.md names real things: every file it gives exists, and every name in
-- backquotes is in the engine's code (a function, a type, a table) or, for an event or
-- a key, in its strings. A rename that leaves the page behind fails here.
local T = require("warden.testing")

local function strip_comments(src)
  src = src:gsub("/%*.-%*/", " ")
  return (src:gsub("//[^\n]*", " "))
end

local function engine_code()
  local p = io.popen("find engine -name '*.[ch]' -not -path 'engine/fuzz/*' | sort")
  local parts, files = {}, {}
  for path in p:lines() do
    parts[#parts + 1] = strip_comments(T.read(path))
    files[#files + 1] = path
  end
  p:close()
  return table.concat(parts, "\n"), files
end

describe("docs/architecture.md", function()
  local doc = T.read("docs/architecture.md")
  local code, files = engine_code()

  local function file_exists(name)
    if T.read(name) or T.read("engine/" .. name) then return true end
    for _, f in ipairs(files) do
      if f:sub(-#name - 1) == "/" .. name then return true end
    end
    return false
  end

  it("gives files that exist", function()
    local n = 0
    for tok in doc:gmatch("`([^`]+)`") do
      if tok:match("^[%w_/%.%-]+%.[chl][ua]?a?$") or tok:match("^[%w_/%.%-]+%.md$") then
        n = n + 1
        assert.is_true(file_exists(tok), "no file " .. tok)
      end
    end
    assert.is_true(n >= 40, "only " .. n .. " files named")
  end)

  it("names functions, types and tables the code has", function()
    local n = 0
    for tok in doc:gmatch("`([^`]+)`") do
      if tok:match("^[%a_][%w_]*$") and tok:find("_") then
        n = n + 1
        local word = "%f[%w_]" .. tok .. "%f[^%w_]"
        assert.is_truthy(code:find(word), "the engine has no " .. tok)
      end
    end
    assert.is_true(n >= 60, "only " .. n .. " names")
  end)

  it("follows ctx:call_tool from the binding to the audit line", function()
    for _, name in ipairs({ "c_call_tool", "wd_pipeline_tool", "TOOL_CHECKS", "wd_run_start_op",
                            "wd_toolcall_start", "wd_pipeline_tool_done", "wd_run_audit", "wd_audit_append" }) do
      assert.is_truthy(doc:find("`" .. name .. "`", 1, true), name .. " is not on the page")
    end
  end)
end)
