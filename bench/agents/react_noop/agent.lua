-- The benchmark's ReAct agent: the model (the fake server) asks for the no-op tool
-- twice, then answers: 3 LLM calls and 2 tool calls per run (docs/performance.md).
return warden.agent {
  name = "react_noop",
  tools = { "noop" },
  system_prompt = "Call noop until you are done.",
}
