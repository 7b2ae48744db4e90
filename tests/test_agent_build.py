"""The shipped agent beams match agent/*.erl and load on this OTP with code:load_binary.

No distribution here: one plain `erl -noshell` (no epmd) loads the beams from
memory, asks the agent who it is, and removes it again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "agent"
BEAMS = REPO / "pyrlang_deploy" / "agent"
MODULES = ["erldeploy_fmt", "erldeploy_capture", "erldeploy_upload", "erldeploy_relay", "erldeploy_decision",
           "erldeploy_guard",
           "erldeploy_agent"]


def sources_sha256() -> str:
    # The recipe documented in agent/README.md and scripts/build_agent.
    h = hashlib.sha256()
    for p in sorted([*SRC.glob("*.erl"), *SRC.glob("*.hrl")], key=lambda p: p.name):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def erl() -> str:
    path = shutil.which("erl")
    assert path, "erl not found: install Erlang/OTP (scripts/setup)"
    return path


def test_shipped_beams_are_built_from_the_current_sources():
    stamp = (BEAMS / "SOURCE_SHA256").read_text().strip()
    assert stamp == sources_sha256(), "agent beams are stale: run scripts/build_agent"
    assert (BEAMS / "__init__.py").exists()
    for m in MODULES:
        assert (BEAMS / f"{m}.beam").is_file(), f"{m}.beam missing: run scripts/build_agent"
    assert sorted(p.stem for p in SRC.glob("*.erl")) == sorted(MODULES)


def test_beams_load_from_memory_and_unload_cleanly():
    mods = ",".join(MODULES)
    expr = f"""
        Dir = "{BEAMS}",
        Mods = [{mods}],
        [begin
             {{ok, Bin}} = file:read_file(filename:join(Dir, atom_to_list(M) ++ ".beam")),
             {{module, M}} = code:load_binary(M, "erldeploy_agent (memory)", Bin)
         end || M <- Mods],
        Info = erldeploy_agent:info(),
        io:format("sha=~s~n", [maps:get(source_sha256, Info)]),
        io:format("otp=~s~n", [maps:get(otp, Info)]),
        io:format("algos=~w~n", [maps:get(algos, Info)]),
        io:format("which=~w~n", [[code:which(M) || M <- Mods]]),
        [begin code:purge(M), true = code:delete(M), code:purge(M) end || M <- Mods],
        io:format("loaded=~w~n", [[code:is_loaded(M) || M <- Mods]]),
        halt(0).
    """
    out = subprocess.run([erl(), "-noshell", "-noinput", "-eval", expr], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert lines["sha"] == sources_sha256()          # the digest compiled into the beam
    assert "md5" in lines["algos"]
    # Loaded from memory: the code server knows no file for it.
    assert "non_existing" not in lines["which"] and "/" not in lines["which"]
    assert lines["loaded"] == "[" + ",".join(["false"] * len(MODULES)) + "]"


def test_build_agent_check_agrees():
    out = subprocess.run([str(REPO / "scripts" / "build_agent"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
