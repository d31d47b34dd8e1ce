-- grounding: the claims of the final answer checked against what the run saw, the
-- user's query and its tools' results (docs/safety.md, failure modes: hallucination). A claim
-- (a sentence) is grounded when every number and named entity in it appears in a
-- source, and enough of its content words (stemmed, stop words left out) do too.
-- Settings: threshold (0.7: the share of claims that must be grounded), strict_numbers
-- (true: one number no source has is enough), min_overlap (0.6: of a claim's content
-- words), min_claim_words (3: shorter sentences without numbers or names are no claims),
-- require_sources (false: an answer given without any tool result is not judged),
-- verdict (warn).
local D = require "warden.detect"
local C = require "warden.claims"

local function contains(hay, needle)
  return hay:find(needle, 1, true) ~= nil
end

return warden.detector {
  name = "grounding",
  failure_mode = "hallucination",
  on = { "run_finished" },
  check = function(event, history, ctx)
    if event.status ~= "completed" or type(event.result) ~= "string" then
      return nil
    end
    local cfg = ctx.config
    local texts, seen_tool = { ctx.query or "" }, false
    for _, ev in ipairs(history) do
      if ev.type == "tool_result" and ev.success then
        texts[#texts + 1] = D.text_of(ev.result)
        seen_tool = true
      end
    end
    if not seen_tool and not cfg.require_sources then
      return nil
    end
    local source = table.concat(texts, "\n")
    local lower = source:lower()
    local numbers, words = {}, {}
    for _, n in ipairs(C.numbers(source)) do
      numbers[n] = true
    end
    for _, w in ipairs(C.words(source)) do
      words[w] = true
    end
    local min_overlap = cfg.min_overlap or 0.6
    local min_words = cfg.min_claim_words or 3
    local claims, ungrounded, bad_number = 0, {}, false
    for _, sentence in ipairs(C.sentences(event.result)) do
      local missing = {}
      local nums = C.numbers(sentence)
      local ents = C.entities(sentence)
      local cw = C.words(sentence)
      if #nums > 0 or #ents > 0 or #cw >= min_words then
        claims = claims + 1
        for _, n in ipairs(nums) do
          if not numbers[n] then
            missing[#missing + 1] = n
            bad_number = true
          end
        end
        for _, e in ipairs(ents) do
          if not contains(lower, e:lower()) then
            missing[#missing + 1] = e
          end
        end
        local found = 0
        for _, w in ipairs(cw) do
          if words[w] then
            found = found + 1
          end
        end
        local overlap = #cw > 0 and found / #cw or 1
        if #missing > 0 or overlap < min_overlap then
          ungrounded[#ungrounded + 1] = { claim = sentence, missing = missing,
                                          overlap = math.floor(overlap * 100 + 0.5) / 100 }
        end
      end
    end
    if claims == 0 then
      return nil
    end
    local rate = (claims - #ungrounded) / claims
    local threshold = cfg.threshold or 0.7
    local strict = cfg.strict_numbers ~= false
    if rate >= threshold and not (strict and bad_number) then
      return nil
    end
    local names = {}
    for i, u in ipairs(ungrounded) do
      if i > 5 then
        names[#names + 1] = string.format("and %d more", #ungrounded - 5)
        break
      end
      names[i] = string.format("%q%s", u.claim,
                               #u.missing > 0 and (" (not in any source: " .. table.concat(u.missing, ", ") .. ")") or "")
    end
    return { verdict = cfg.verdict or "warn", grounding_rate = rate, threshold = threshold,
             claims = claims, ungrounded = ungrounded,
             reason = string.format("%d of %d claims are not grounded in what the run saw: %s", #ungrounded, claims,
                                    table.concat(names, "; ")) }
  end,
}
