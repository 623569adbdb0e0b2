"""The project's own exception for a file it cannot read: FormatError.

Every reader of a file that a user can hand to minigpt1 (tokenizer files, checkpoints,
HuggingFace directories, task data) reports a malformed file as FormatError. Its message
starts with the file's path and says what is wrong, so a caller needs one `except` and a user
reads one line, never a traceback from deep inside NumPy. It is a ValueError, so code that
already catches ValueError keeps working.
"""


class FormatError(ValueError):
    """A file that cannot be read as what it claims to be; the message names the file."""
