-- summarize: extractive summary, the first sentences of a text up to a length
return warden.tool {
  name = "summarize",
  description = "Summarize a text in a few sentences",
  parameters = {
    type = "object", required = { "text" }, additionalProperties = false,
    properties = {
      text = { type = "string", minLength = 1, maxLength = 20000 },
      max_sentences = { type = "integer", minimum = 1, maximum = 10, default = 2 },
    },
  },
  run = function(args)
    local out = {}
    for sentence in args.text:gmatch("[^%.!?]+[%.!?]?") do
      local s = sentence:gsub("^%s+", "")
      if #s > 0 then out[#out + 1] = s end
      if #out >= args.max_sentences then break end
    end
    return { summary = table.concat(out, " ") }
  end,
}
