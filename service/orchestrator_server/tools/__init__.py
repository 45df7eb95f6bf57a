"""Server-side tools: built-ins, operator plugins (entry points) and MCP servers."""
