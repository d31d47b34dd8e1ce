-- extract_text: normalizes the request's text (whitespace, control characters)
return warden.tool {
  name = "extract_text",
  description = "Extract plain text from the input",
  parameters = {
    type = "object", required = { "input" }, additionalProperties = false,
    properties = { input = { type = "string", minLength = 1, maxLength = 100000 } },
  },
  run = function(args)
    local text = args.input:gsub("%c", " "):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
    return { text = text, characters = #text }
  end,
}
