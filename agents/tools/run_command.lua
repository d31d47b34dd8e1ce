-- run_command: runs a command in the engine's bubblewrap sandbox (ctx:exec): no network,
-- a read-only system, only the tool's allowed and writable resources, rlimits and a wall
-- timeout. The policy keeps it to category execute and may make it wait for approval.
return warden.tool {
  name = "run_command",
  description = "Run a command (argv list) in a sandbox and return its exit code and output",
  parameters = {
    type = "object", required = { "argv" }, additionalProperties = false,
    properties = {
      argv = { type = "array", minItems = 1, maxItems = 64, items = { type = "string", maxLength = 4096 } },
      stdin = { type = "string", maxLength = 65536 },
      timeout_ms = { type = "integer", minimum = 1, maximum = 600000 },
    },
  },
  run = function(args, ctx)
    local res, err = ctx:exec { argv = args.argv, stdin = args.stdin, timeout_ms = args.timeout_ms }
    if not res then return { error = err } end
    return { exit_code = res.exit_code, signal = res.signal, stdout = res.stdout, stderr = res.stderr,
             timed_out = res.timed_out, truncated = res.truncated }
  end,
}
