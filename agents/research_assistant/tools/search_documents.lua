-- search_documents: keyword search over the corpus in data/corpus.json
local json = require("cjson")

local function words(s)
  local out = {}
  for w in s:lower():gmatch("%w+") do
    if #w > 2 then out[#out + 1] = w end
  end
  return out
end

return warden.tool {
  name = "search_documents",
  description = "Search the knowledge base and return the best matching documents",
  parameters = {
    type = "object", required = { "query" }, additionalProperties = false,
    properties = {
      query = { type = "string", minLength = 1, maxLength = 500 },
      max_results = { type = "integer", minimum = 1, maximum = 50, default = 10 },
    },
  },
  run = function(args, ctx)
    local text, err = ctx:read_file("data/corpus.json")
    if not text then return nil, err end
    local docs = json.decode(text)
    local terms = words(args.query)
    local hits = {}
    for _, doc in ipairs(docs) do
      local hay = (doc.title .. " " .. doc.body):lower()
      local score = 0
      for _, t in ipairs(terms) do
        if hay:find(t, 1, true) then score = score + 1 end
      end
      if score > 0 then
        hits[#hits + 1] = { id = doc.id, title = doc.title, snippet = doc.body:sub(1, 160), score = score }
      end
    end
    table.sort(hits, function(a, b) return a.score > b.score or (a.score == b.score and a.id < b.id) end)
    local results = {}
    for i = 1, math.min(#hits, args.max_results) do results[i] = hits[i] end
    return { results = results, total = #hits }
  end,
}
