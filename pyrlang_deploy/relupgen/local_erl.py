"""The local emulator that runs systools:make_relup, booted before anything else.

Its boot (a quarter of a second) is most of what the command waits for, so it starts
first - this module imports only os, shutil and subprocess - and waits on stdin for the
work dir (make_relup.py's Inputs) while systools' own modules load; it prints MARK
lines (the result, systools' warnings, or its error) and halts.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import ReleaseError

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .make_relup import Inputs

MARK = "erldeploy-relup:"
# what make_relup loads beyond a start_clean boot (code:all_loaded() before and after, OTP 25)
PRELOAD = "[systools, systools_make, systools_relup, systools_rc, systools_lib, digraph, digraph_utils, epp]"
SCRUBBED_ENV = ("ERL_LIBS", "ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ROOTDIR", "BINDIR", "EMU", "PROGNAME")


class MakeRelupError(ReleaseError):
    """systools:make_relup refused the input (message is systools' own), or could not run."""


class RelupResult:
    __slots__ = ("text", "warnings", "runner")

    def __init__(self, text: str, warnings: list[str], runner: str) -> None:
        self.text = text            # the relup file as systools wrote it
        self.warnings = warnings    # systools' own warnings, formatted by it
        self.runner = runner        # which Erlang ran it, for the user


def _expr(restart: bool) -> str:
    """Reads the work dir from stdin, runs make_relup there, prints MARK lines."""
    extra = ", restart_emulator" if restart else ""
    return (
        # systools' modules load while we still read the releases (not on make_relup's clock)
        'code:ensure_modules_loaded(' + PRELOAD + '), '
        'Dir = string:trim(io:get_line("")), ok = file:set_cwd(Dir), '
        'Name = string:trim(io:get_line("")), '
        'Path = string:lexemes(io:get_line(""), " \\n"), '
        'Out = fun(Tag, Text) -> io:format("' + MARK + '~s ~s~n", [Tag, '
        'binary:encode_hex(unicode:characters_to_binary(Text))]) end, '
        'case catch systools:make_relup("new/" ++ Name, ["old/" ++ Name], ["old/" ++ Name], '
        '[silent, {path, Path}, {outdir, "out"}' + extra + ']) of '
        '{ok, _, Mod, Ws} -> [Out("warning", Mod:format_warning(W)) || W <- Ws], Out("ok", ""); '
        '{error, Mod, E} -> Out("error", Mod:format_error(E)); '
        'Other -> Out("error", io_lib:format("~0tp", [Other])) end, halt().')


def _parse_output(out: str, err: str, runner: str) -> list[str]:
    warnings, ok = [], False
    for line in out.splitlines():
        if not line.startswith(MARK):
            continue
        tag, _, hexed = line[len(MARK):].partition(" ")
        msg = bytes.fromhex(hexed.strip()).decode("utf-8", "replace").strip()
        if tag == "error":
            raise MakeRelupError(f"systools:make_relup ({runner}): {' '.join(msg.split())}")
        if tag == "warning":
            warnings.append(" ".join(msg.split()))
        if tag == "ok":
            ok = True
    if not ok:
        tail = " | ".join((err or out).strip().splitlines()[-3:])
        raise MakeRelupError(f"systools:make_relup did not finish ({runner}): {tail or 'no output'}")
    return warnings


class LocalErl:
    """An emulator started early, waiting on stdin for the work dir."""

    def __init__(self, argv: list[str], env: dict[str, str], runner: str, restart: bool,
                 cleanup: Path | None = None):
        # cleanup: a dir to remove once the emulator is done with it (carried_erts' root)
        self.runner = runner
        self.cleanup = cleanup
        full = [*argv, "-noshell", "-eval", _expr(restart)]
        self.proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self._tmp: Any = None       # the work dir, from start() to result()
        self._work: Path | None = None

    def start(self, inputs: Inputs) -> None:
        """Hand systools its inputs; it runs while we do other work (result() waits)."""
        import tempfile
        from pathlib import Path

        self._tmp = tempfile.TemporaryDirectory(prefix="erldeploy-relup-", dir=_memory_dir())
        self._work = Path(self._tmp.name)
        inputs.write(self._work)
        try:
            # a few hundred bytes: the pipe takes them whole, so this never blocks
            self.proc.stdin.write(f"{self._work}\n{inputs.name}\n{' '.join(inputs.path)}\n")
            self.proc.stdin.close()
        except OSError:
            pass                    # erl is gone: result() reports what it said
        self.proc.stdin = None      # communicate() must not touch it again

    def result(self, timeout: float = 300.0) -> RelupResult:
        try:
            try:
                out, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.close()
                raise MakeRelupError(f"systools:make_relup ({self.runner}) took over {timeout:g}s") from None
            finally:
                if self.cleanup is not None:
                    shutil.rmtree(self.cleanup, ignore_errors=True)
            warnings = _parse_output(out, err, self.runner)
            return RelupResult((self._work / "out" / "relup").read_text("utf-8"), warnings, self.runner)
        finally:
            self._tmp.cleanup()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)
        if self._tmp is not None:
            self._tmp.cleanup()


def _memory_dir() -> str | None:
    """Where the work dir goes: /dev/shm when it is there and writable (the few dozen small
    files systools reads cost ~45 ms to create and remove on this disk, ~6 ms in memory),
    else the usual temp dir (TMPDIR). An explicit TMPDIR wins."""
    if os.environ.get("TMPDIR"):
        return None
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def erl_env() -> dict[str, str]:
    # no erl_crash.dump left in the user's cwd when a boot fails
    return {**{k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}, "ERL_CRASH_DUMP_SECONDS": "0"}


def path_erl(restart: bool) -> LocalErl | None:
    """`erl` on PATH, booted now; None when there is none."""
    erl = shutil.which("erl")
    if erl is None:
        return None
    return LocalErl([erl, "-boot", "start_clean"], erl_env(), f"erl on PATH ({erl})", restart)
