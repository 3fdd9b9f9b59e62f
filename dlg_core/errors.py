"""The one exception type the project raises for input it refuses.

Its message is written for a student: the UI shows it as it is, and the CLI prints it as one line
and exits with code 2. Anything else that escapes is a bug.
"""


class BadInputError(ValueError):
    """Input a user gave us (a file, a setting, a link) that we refuse, with a message they can read."""
