"""`erldeploy shell` through a real pseudo-terminal against a real cluster: type a line,
read what the screen shows."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Term:
    def __init__(self, args, env):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.screen = ""

    def read_until(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} never appeared; screen:\n{self.screen[-3000:]}"
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                self.screen += ANSI.sub("", data.decode("utf-8", "replace"))
        at = self.screen.index(needle) + len(needle)
        seen, self.screen = self.screen[:at], self.screen[at:]
        return seen

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


def shell(demo, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    env.update(ERLDEPLOY_COOKIE=demo.cookie, ERL_EPMD_PORT=str(demo.epmd_port), HOME=str(tmp_path),
               TERM="xterm", COLUMNS="120", ERLDEPLOY_HISTORY=str(tmp_path / "history"))
    return Term([sys.executable, "-m", "pyrlang_deploy.cli.main", "shell", "--cluster", "-n", demo.nodes[0]], env)


def test_shell_rpc_io_status_and_node_down(demo, tmp_path):
    t = shell(demo, tmp_path)
    try:
        t.read_until(">>> ")
        t.type("nodes")
        seen = t.read_until(">>> ")
        for n in demo.nodes:
            assert n in seen
        t.type(f'await rpc("{demo.nodes[0]}", "lists", "seq", [1, 3])')
        assert "[1,2,3]" in t.read_until(">>> ")
        t.type(f'await erl("{demo.nodes[1]}", "io:format(\\"héllo ~p~n\\", [x]), {{node(), \\"é\\"}}.")')
        seen = t.read_until(">>> ")
        assert "héllo x" in seen                      # remote io:format reaches the prompt
        assert f"{{'{demo.nodes[1]}',\"é\"}}" in seen  # Erlang syntax, non-ASCII intact
        t.type("st = await status(); st.one_release")
        assert "true" in t.read_until(">>> ")
        demo.kill_node(demo.nodes[2])
        t.type(f'await rpc("{demo.nodes[2]}", "erlang", "node", [])')
        seen = t.read_until(">>> ")
        assert "error:" in seen and demo.nodes[2].split("@")[0] in seen   # reported, prompt alive
        t.type(f'await rpc("{demo.nodes[0]}", "erlang", "node", [])')
        assert demo.nodes[0] in t.read_until(">>> ")
        t.type("exit()")
        assert t.proc.wait(20) == 0
    finally:
        t.close()
    history = (tmp_path / "history").read_text()
    assert "await status()" in history                  # history persists between sessions
