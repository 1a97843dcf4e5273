"""nbmedic inside the tools people already use: a pytest plugin and a papermill engine (entry points)."""
