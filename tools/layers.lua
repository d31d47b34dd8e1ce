-- layers.lua - checks the engine's shape from its sources (docs/architecture.md).
--
-- usage: lua5.4 tools/layers.lua [--graph] [--sizes-warn] [engine_dir]
--   --graph       prints which files each file calls (and by which first name)
--   --sizes-warn  reports sizes over the limits without failing on them
--
-- It reads every .c and .h under the engine folder and fails (exit 1) when
--   * a file includes a header of a higher layer, or calls a function that a file of
--     a higher layer defines;
--   * files call each other in a loop (a strongly connected component of more than one
--     file in the graph "file A calls a function defined in file B");
--   * a file is over MAX_LINES lines, or a function over MAX_FUNC lines unless it is
--     named in DISPATCHERS.
-- Calls are found by name: a function other files use is named wd_<module>_<verb> and
-- is defined at the start of a line, so a word followed by "(" that names a function
-- defined in another file is a call (or a reference to it, which counts the same: a
-- pointer taken is a call made later). Comments and strings are removed first.
local MAX_LINES, MAX_FUNC = 800, 80

-- lowest first: a folder may use its own files and those of the folders before it
local LAYERS = { "base", "policy", "sandbox", "state", "audit", "runtime", "ops",
                 "bindings", "serve", "cli" }
local SKIP = { test = true, fuzz = true, bench = true }
-- dispatchers allowed to run long, one branch per keyword (docs/architecture.md, Sizes)
local DISPATCHERS = { ["schema.c:compile"] = true, ["schema.c:validate"] = true }

local argv = { ... }
local opts, root = {}, "engine"
for _, a in ipairs(argv) do
    if a:sub(1, 2) == "--" then opts[a:sub(3)] = true else root = a end
end

local rank = {}
for i, name in ipairs(LAYERS) do rank[name] = i end

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

-- strips comments, string and character literals, keeping line breaks
local function strip(src)
    local out, i, n = {}, 1, #src
    while i <= n do
        local c, d = src:sub(i, i), src:sub(i, i + 1)
        if d == "/*" then
            local j = src:find("*/", i + 2, true) or n
            out[#out + 1] = (src:sub(i, j + 1):gsub("[^\n]", " "))
            i = j + 2
        elseif d == "//" then
            local j = src:find("\n", i, true) or n + 1
            i = j
        elseif c == '"' or c == "'" then
            local j = i + 1
            while j <= n do
                local e = src:sub(j, j)
                if e == "\\" then j = j + 2
                elseif e == c or e == "\n" then break
                else j = j + 1 end
            end
            out[#out + 1] = c .. c
            i = j + 1
        else
            local j = src:find("[/\"']", i + 1) or n + 1
            out[#out + 1] = src:sub(i, j - 1)
            i = j
        end
    end
    return table.concat(out)
end

local function list(dir)
    local p = io.popen('find "' .. dir .. '" -name "*.[ch]" | sort')
    local files = {}
    for path in p:lines() do files[#files + 1] = path end
    p:close()
    return files
end

-- folder of a file relative to root: "engine/base/util.c" -> "base"; files directly in
-- root (or an unknown folder) have no layer
local function folder(path)
    local rel = path:sub(#root + 2)
    return rel:match("^([^/]+)/") or ""
end

local files, byname, defs, problems, warnings = {}, {}, {}, {}, {}
local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
local function size_problem(fmt, ...)
    local t = opts["sizes-warn"] and warnings or problems
    t[#t + 1] = string.format(fmt, ...)
end

for _, path in ipairs(list(root)) do
    local top = folder(path)
    if not SKIP[top] and top ~= "include" then
        local src = read(path)
        local f = { path = path, base = path:match("([^/]+)$"), layer = top, src = src,
                    code = strip(src), lines = select(2, src:gsub("\n", "")) }
        files[#files + 1] = f
        byname[f.base] = f
    end
end

-- function definitions: a line starting with a type and a name, "(" and no ";" and the
-- body's "{" on the next line at column 0, closed by "}" at column 0
for _, f in ipairs(files) do
    f.funcs = {}
    local lines = {}
    for l in (f.code .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    local i = 1
    while i <= #lines do
        local l = lines[i]
        local name = l:match("^[%a_][%w_%s%*]-([%a_][%w_]*)%s*%(")
        if name and l:match("{.*}%s*$") then
            -- a one-line function
            local static = l:match("^static") or l:match("^inline")
            f.funcs[#f.funcs + 1] = { name = name, from = i, to = i, static = static }
            if not static and f.path:match("%.c$") then defs[name] = f end
            i = i + 1
        elseif name and not l:match("^%s") and not l:match(";%s*$") and not l:match("^typedef") then
            -- the signature may span lines; the body opens with "{" at column 0
            local j = i
            while j <= #lines and not lines[j]:match("^{") and not lines[j]:match(";%s*$")
                  and not lines[j]:match("{%s*$") do j = j + 1 end
            local opens = j <= #lines and (lines[j]:match("^{") or lines[j]:match("%)%s*{%s*$"))
            if opens then
                local k = j
                if not lines[j]:match("^}") then
                    k = j + 1
                    while k <= #lines and not lines[k]:match("^}") do k = k + 1 end
                end
                local static = l:match("^static") or l:match("^inline") ~= nil
                f.funcs[#f.funcs + 1] = { name = name, from = i, to = k, static = static }
                if not static and f.path:match("%.c$") then
                    defs[name] = f
                end
                i = k + 1
            else
                i = j + 1
            end
        else
            i = i + 1
        end
    end
end

-- sizes
for _, f in ipairs(files) do
    if f.lines > MAX_LINES then size_problem("%s: %d lines (at most %d)", f.path, f.lines, MAX_LINES) end
    for _, fn in ipairs(f.funcs) do
        local n = fn.to - fn.from + 1
        if n > MAX_FUNC and not DISPATCHERS[f.base .. ":" .. fn.name] then
            size_problem("%s:%d: %s is %d lines (at most %d)", f.path, fn.from, fn.name, n, MAX_FUNC)
        end
    end
end

-- includes
for _, f in ipairs(files) do
    local ln = 0
    for l in (f.src .. "\n"):gmatch("([^\n]*)\n") do
        ln = ln + 1
        local h = l:match('^%s*#%s*include%s+"([^"]+)"')
        if h then
            local t = byname[h:match("([^/]+)$")]
            if t and rank[f.layer] and rank[t.layer] and rank[t.layer] > rank[f.layer] then
                problem("%s:%d: includes %s of layer %s above %s", f.path, ln, t.path, t.layer, f.layer)
            end
        end
    end
end

-- calls: file -> set of files it calls
local calls = {}
for _, f in ipairs(files) do
    local out = {}
    calls[f] = out
    if f.path:match("%.c$") then
        local ln = 1
        local pos = 1
        for s, word in f.code:gmatch("()([%a_][%w_]*)") do
            local t = defs[word]
            if t and t ~= f then
                if not out[t] then
                    local _, nl = f.code:sub(pos, s):gsub("\n", "")
                    ln, pos = ln + nl, s
                    out[t] = { name = word, line = ln }
                end
            end
        end
        for t, site in pairs(out) do
            if rank[f.layer] and rank[t.layer] and rank[t.layer] > rank[f.layer] then
                problem("%s:%d: calls %s (%s) of layer %s above %s", f.path, site.line, site.name,
                        t.path, t.layer, f.layer)
            end
        end
    end
end

-- loops: Tarjan's strongly connected components over the call graph
local index, low, onstack, stack, n = {}, {}, {}, {}, 0
local sccs = {}
local function visit(v)
    n = n + 1
    index[v], low[v] = n, n
    stack[#stack + 1] = v
    onstack[v] = true
    for w in pairs(calls[v]) do
        if not index[w] then
            visit(w)
            low[v] = math.min(low[v], low[w])
        elseif onstack[w] then
            low[v] = math.min(low[v], index[w])
        end
    end
    if low[v] == index[v] then
        local comp = {}
        repeat
            local w = table.remove(stack)
            onstack[w] = nil
            comp[#comp + 1] = w.path
        until w == v
        if #comp > 1 then
            table.sort(comp)
            sccs[#sccs + 1] = comp
        end
    end
end
for _, f in ipairs(files) do if not index[f] then visit(f) end end
for _, comp in ipairs(sccs) do
    problem("files call each other in a loop: %s", table.concat(comp, " "))
end

if opts.graph then
    for _, f in ipairs(files) do
        local t = {}
        for g, site in pairs(calls[f]) do t[#t + 1] = g.base .. "(" .. site.name .. ")" end
        table.sort(t)
        if #t > 0 then print(f.path .. " -> " .. table.concat(t, " ")) end
    end
end

table.sort(problems)
table.sort(warnings)
for _, p in ipairs(warnings) do io.stderr:write("warning: ", p, "\n") end
for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
local nfun = 0
for _, f in ipairs(files) do nfun = nfun + #f.funcs end
print(string.format("layers: %d files, %d functions, %d problems%s", #files, nfun, #problems,
                    #warnings > 0 and string.format(", %d sizes over the limits", #warnings) or ""))
os.exit(#problems == 0 and 0 or 1)
