"""The one exception type for bad user input: printed as a single line, exit code 2."""


class UserError(Exception):
    """Something the user can fix. The message says what is wrong and what to do."""
