"""User-facing errors.

Raise `EmoSplatError` (or a subclass) for anything a user can fix: its message
is printed as-is by the CLI and shown in Blender, so it names the file or field
at fault and says what to do. Anything else is a bug and keeps its traceback.
"""


class EmoSplatError(Exception):
    """A failure the user can act on; `str(err)` is the whole message."""


class InvalidFileError(EmoSplatError):
    """A file is missing, truncated, of the wrong kind or has a bad field."""


class DeviceError(EmoSplatError):
    """The requested compute device (CUDA) is not usable."""
