-- research_assistant: a ReAct agent (Path A). It searches a small corpus it ships,
-- summarizes, and can ask for delete_document, which the policy gives to admins only.
return warden.agent {
  name = "research_assistant",
  model = "default",
  system_prompt = warden.prompt("prompts/research.txt"),
  tools = { "search_documents", "summarize", "delete_document" },
  max_iterations = 5,
  -- built-ins (lua/warden/detectors/), set up under the policy's detectors:
  detectors = { "loop", "grounding", "misuse", "exhaustion" },
}
