-- luacheck: scripts are Lua 5.4 running in warden's sandbox
std = "lua54"
max_line_length = 130
files["lua"] = { globals = {} }
files["lua/warden/detectors"] = { read_globals = { "warden" } }
files["agents"] = { read_globals = { "warden" } }
files["spec/fixtures"] = { read_globals = { "warden" } }
files["spec"] = { std = "+busted" }
files["templates/agent"] = { read_globals = { "warden" } }
files["templates/agent/spec"] = { std = "+busted" }
exclude_files = { "build", "build-asan", "spec/fixtures/tools", "tools/npm" }
