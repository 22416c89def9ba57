"""The one base of the library's typed input errors.

An :class:`InputError` says that something the user gave (a file, a folder, an option, a config value) is missing
or is not what it claims to be; its message names that thing and says what to do. Every ``specreg`` door turns one
into a single line on stderr and exit code 2 (``kit/command.py``); any other exception is a bug and keeps its
traceback. Concrete errors mix it with the builtin class their callers already catch, e.g.
``class DatasetError(InputError, ValueError)`` or ``class AssetMissingError(InputError, FileNotFoundError)``.
"""

from __future__ import annotations


class InputError(Exception):
    """A missing or bad input; the message names it (file, option or config field) and what to do."""
