"""Small pure helpers every part may use: durable writes, safe names, strict JSON,
backoff. They import nothing of the agent."""
