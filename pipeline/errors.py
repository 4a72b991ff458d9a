"""The one family of errors a user can fix.

Library code raises a subclass of `UserError` whose message says what to fix
(a flag, a file, a span); the command layer (`fmnist/`) prints it as one
`error: ...` line and exits 2. So does a file-system error on a path the user
gave (fmnist/cli.py; `-v` shows its traceback). Anything else is a bug and
keeps its traceback.
This module imports nothing, so any layer can use it.
"""


class UserError(Exception):
  """Bad input, configuration or environment; the message says how to fix it."""
