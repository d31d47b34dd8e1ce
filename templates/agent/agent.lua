-- {{name}}: a ReAct agent. The engine runs the loop: each model call and each tool call
-- passes the policy (authorization, budgets, timeouts, guardrails, audit) first.
return warden.agent {
  name = "{{name}}",
  model = "default",
  system_prompt = warden.prompt("prompts/system.txt"),
  tools = { "greet" },
  max_iterations = 5,
}
