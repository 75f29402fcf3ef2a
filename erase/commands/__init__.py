"""One module per CLI command, named as the command (`class_`, `list_` and `import_` because those are
Python keywords or builtins). Each has `main(args, command_line) -> exit code`; erase/cli.py parses the
arguments and calls it. Commands use erase/runs/ and everything below it; no command imports another.
"""
