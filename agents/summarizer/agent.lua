-- summarizer: a fixed workflow (Path B, no LLM loop): extract the text, summarize it,
-- format the answer. Every step still goes through the engine's tool pipeline.
return warden.workflow {
  name = "summarizer",
  steps = {
    "extract_text",
    { tool = "summarize", args = function(state) return { text = state.previous.text, max_sentences = 2 } end },
    { tool = "format", args = function(state) return { input = state.previous.summary } end },
  },
}
