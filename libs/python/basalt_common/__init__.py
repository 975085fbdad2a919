"""Code the Python services share (llm-orchestrator, mcp-server).

Not a distribution: scripts/bootstrap puts libs/python on the project
venv's path (a .pth file) and each service image copies the package next
to its own (PYTHONPATH=/app).
"""
