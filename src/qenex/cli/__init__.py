"""The `qenex` command line: thin commands that parse, call a service and render."""
