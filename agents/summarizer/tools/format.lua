-- format: the user-facing answer
return warden.tool {
  name = "format",
  description = "Format a summary for the user",
  parameters = {
    type = "object", required = { "input" }, additionalProperties = false,
    properties = { input = { type = "string" } },
  },
  run = function(args) return { text = "Summary: " .. args.input } end,
}
