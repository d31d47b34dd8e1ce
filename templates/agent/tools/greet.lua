-- greet: the tool the model may call. Its arguments are checked against `parameters`
-- before `run` sees them; the policy (policy.yaml beside agent.lua) says who may call it.
return warden.tool {
  name = "greet",
  description = "Greet someone by name",
  parameters = {
    type = "object", required = { "name" }, additionalProperties = false,
    properties = { name = { type = "string", minLength = 1, maxLength = 100 } },
  },
  run = function(args)
    return { greeting = "Hello, " .. args.name .. "!" }
  end,
}
