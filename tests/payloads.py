"""Pickle payloads: objects whose unpickling runs code. Every loader of sagan must refuse them
(``weights_only=True``, ``allow_pickle=False``, the magic-byte check); each test asserts the marker
file never appears, and tests/test_faults_security.py checks that the payloads are live."""

from __future__ import annotations

import os


class FileMaker:
    """Unpickling this creates the file ``path`` (an attacker would do worse)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class ShellCommand:
    """Unpickling this runs a shell command that creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class CodeRunner:
    """Unpickling this executes Python code that writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))
