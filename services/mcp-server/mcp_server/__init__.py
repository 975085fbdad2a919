"""basalt MCP server: the platform's APIs as MCP tools, resources, prompts."""
