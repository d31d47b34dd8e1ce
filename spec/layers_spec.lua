-- The engine's shape (docs/architecture.md, Layers): tools/layers.lua fails on a call or
-- an include from a lower folder to a higher one, on files that call each other in a
-- loop, and on sizes over the limits; the engine itself passes.
local T = require("warden.testing")

-- a tree of engine folders from {path = text}; the checker's exit code and its output
local function check(files, flags)
  local root = T.tmpfile("-engine")
  for path, text in pairs(files) do
    os.execute(("mkdir -p %s/%s"):format(root, path:match("^(.*)/") or "."))
    T.write(root .. "/" .. path, text)
  end
  local out, rc = T.sh(("lua5.4 tools/layers.lua %s %s 2>&1"):format(flags or "", root))
  return rc, out
end

local function fn(name, body) return ("int %s(void)\n{\n%s    return 0;\n}\n"):format(name, body or "") end

describe("layering check", function()
  it("passes the engine as it is", function()
    local out, rc = T.sh("lua5.4 tools/layers.lua --sizes-warn 2>&1")
    assert.equal(0, rc, out)
    assert.matches("0 problems", out)
  end)

  it("passes a tree whose calls go down only", function()
    local rc, out = check({ ["base/a.c"] = fn("wd_a_x"), ["ops/b.c"] = fn("wd_b_y", "    wd_a_x();\n") })
    assert.equal(0, rc, out)
  end)

  it("fails on a call to a higher layer, naming the file, line and function", function()
    local rc, out = check({ ["base/a.c"] = fn("wd_a_x", "    wd_b_y();\n"), ["ops/b.c"] = fn("wd_b_y") })
    assert.equal(1, rc)
    assert.matches("base/a.c:3: calls wd_b_y %(.-ops/b.c%) of layer ops above base", out)
  end)

  it("counts a function taken by reference (a table of callbacks) as a call", function()
    local rc, out = check({ ["base/a.c"] = "static int (*const T[])(void) = {wd_b_y};\n" .. fn("wd_a_x"),
                            ["ops/b.c"] = fn("wd_b_y") })
    assert.equal(1, rc)
    assert.matches("calls wd_b_y", out)
  end)

  it("fails on an include of a higher layer's header", function()
    local rc, out = check({ ["base/a.c"] = '#include "b.h"\n' .. fn("wd_a_x"), ["ops/b.h"] = "int wd_b_y(void);\n",
                            ["ops/b.c"] = fn("wd_b_y") })
    assert.equal(1, rc)
    assert.matches("base/a.c:1: includes .-ops/b.h of layer ops above base", out)
  end)

  it("fails on files that call each other in a loop, within one layer", function()
    local rc, out = check({ ["ops/a.c"] = fn("wd_a_x", "    wd_c_z();\n"), ["ops/b.c"] = fn("wd_b_y", "    wd_a_x();\n"),
                            ["ops/c.c"] = fn("wd_c_z", "    wd_b_y();\n") })
    assert.equal(1, rc)
    assert.matches("files call each other in a loop: .-ops/a.c .-ops/b.c .-ops/c.c", out)
  end)

  it("fails on a function over 80 lines and a file over 800, or only warns with --sizes-warn", function()
    local long = fn("wd_a_long", ("    x++;\n"):rep(80))
    local big = fn("wd_b_y") .. ("/* filler */\n"):rep(800)
    local files = { ["base/a.c"] = "static int x;\n" .. long, ["ops/b.c"] = big }
    local rc, out = check(files)
    assert.equal(1, rc)
    assert.matches("base/a.c:2: wd_a_long is 84 lines %(at most 80%)", out)
    assert.matches("ops/b.c: 804 lines %(at most 800%)", out)
    rc, out = check(files, "--sizes-warn")
    assert.equal(0, rc, out)
    assert.matches("2 sizes over the limits", out)
  end)
end)
