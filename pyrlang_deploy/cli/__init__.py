"""The `erldeploy` command line. Modules here only parse, call the Python API and render."""
