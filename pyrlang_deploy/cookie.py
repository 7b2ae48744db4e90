"""Reading a cookie file: one reader for the CLI and for `LocalNode(cookie=None)`."""

from __future__ import annotations

import os
import stat

from .errors import UsageError


def default_cookie_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".erlang.cookie")


def read_cookie_file(path: str | os.PathLike | None = None, *, required: bool = True,
                     warnings: list[str] | None = None) -> str | None:
    """The cookie in ``path`` (default ``~/.erlang.cookie``), stripped as ``erl`` reads it.

    A missing file is None unless ``required``; an unreadable or empty one is a
    UsageError. A file readable by group or others adds a line to ``warnings``.
    The cookie itself never appears in a message.
    """
    path = os.fspath(path) if path is not None else default_cookie_path()
    try:
        st = os.stat(path)
        with open(path, encoding="latin-1") as f:
            text = f.read().strip()
    except FileNotFoundError:
        if required:
            raise UsageError(f"cookie file {path} does not exist") from None
        return None
    except OSError as e:
        raise UsageError(f"cannot read cookie file {path}: {e.strerror or e}") from None
    if warnings is not None and st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(f"cookie file {path} is readable by other users (chmod 400 {path})")
    if not text:
        raise UsageError(f"cookie file {path} is empty")
    return text
