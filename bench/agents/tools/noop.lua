-- A tool that does nothing, with a schema to validate, so the bench measures enforcement.
return warden.tool {
  name = "noop",
  description = "Does nothing",
  parameters = {
    type = "object", required = { "query" }, additionalProperties = false,
    properties = {
      query = { type = "string", minLength = 1, maxLength = 500 },
      max_results = { type = "integer", minimum = 1, maximum = 50, default = 10 },
    },
  },
  run = function() return true end,
}
