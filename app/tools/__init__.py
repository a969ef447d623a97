"""The tools a voice agent may call, one class per tool in its own module.

A tool class declares everything about its tool: its name and description, its arguments (a
pydantic model, from which both the JSON schema the models see and the check of what they send
come), the caller intent that lets the small model see it and the arguments grounded in the
caller's words, its spoken fallbacks, when it can work here, and `run()`. `base.py` has the base
class and what a run returns, `http.py` the plumbing of the tools that call a business system,
and `registry.py` the list of tools and the `ToolBox` that offers and runs them on a replica.
Adding a tool is one new module, and its class added to `registry.TOOLS`.
"""
