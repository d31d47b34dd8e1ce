-- The benchmark's ReAct agent with detectors on: react_noop watched by the built-in
-- loop, misuse and exhaustion detectors (their cost per run is the difference).
return warden.agent {
  name = "react_watched",
  tools = { "noop" },
  system_prompt = "Call noop until you are done.",
  detectors = { "loop", "misuse", "exhaustion" },
}
