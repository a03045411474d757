"""A plug-in module whose import fails (tests of what a run does with it)."""

raise ImportError("broken_plugin: a dependency is missing")
