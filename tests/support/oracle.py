"""An Erlang node that judges the codec: one `erl -noinput` per test session.

It speaks {packet,4} over its stdin/stdout (open_port({fd,0,1}, ...)); every
request and reply is a term_to_binary. No distribution, so no epmd and no node
name. Requests (Bin = bytes we encoded, Src = Erlang source text):

    {roundtrip, Bin}      -> {ok, term_to_binary(binary_to_term(Bin))}
    {equal, BinA, BinB}   -> {ok, binary_to_term(BinA) =:= binary_to_term(BinB)}
    {check, Bin, Src}     -> {ok, binary_to_term(Bin) =:= eval(Src),
                                  term_to_binary(binary_to_term(Bin))}
    {eval, Src}           -> {ok, term_to_binary(V), term_to_binary(V, [compressed])}
    {eval, Src, Bindings} -> the same, with [{"Name", Bin}] bound as variables

Failures come back as {error, {Class, Reason}} and raise OracleError.
"""

from __future__ import annotations

import os
import select
import struct
import subprocess
import tempfile
from typing import Any

from pyrlang_deploy.term import Atom, ImproperList, MapKey, decode, encode, format_term

_SERVER = r"""
Port = open_port({fd, 0, 1}, [binary, {packet, 4}]),
process_flag(trap_exit, true),
Eval = fun(Src, Bindings) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Src)),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    Bs = lists:foldl(fun({N, B}, Acc) -> erl_eval:add_binding(list_to_atom(N), binary_to_term(B), Acc) end,
                     erl_eval:new_bindings(), Bindings),
    {value, V, _} = erl_eval:exprs(Exprs, Bs),
    V
end,
Handle = fun
    ({roundtrip, B}) -> {ok, term_to_binary(binary_to_term(B))};
    ({equal, A, B}) -> {ok, binary_to_term(A) =:= binary_to_term(B)};
    ({check, B, Src}) ->
        T = binary_to_term(B),
        {ok, T =:= Eval(Src, []), term_to_binary(T)};
    ({eval, Src}) ->
        V = Eval(Src, []),
        {ok, term_to_binary(V), term_to_binary(V, [compressed])};
    ({eval, Src, Bindings}) ->
        V = Eval(Src, Bindings),
        {ok, term_to_binary(V), term_to_binary(V, [compressed])};
    (Other) -> {error, {bad_request, Other}}
end,
Loop = fun L() ->
    receive
        {Port, {data, Request}} ->
            Reply = try Handle(binary_to_term(Request))
                    catch Class:Reason -> {error, {Class, Reason}}
                    end,
            port_command(Port, term_to_binary(Reply)),
            L();
        {'EXIT', Port, _} -> halt(0);
        _ -> L()
    end
end,
Loop().
"""


class OracleError(Exception):
    """The node refused a request (e.g. binary_to_term raised badarg)."""


class Oracle:
    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                os.environ.get("ERLDEPLOY_TEST_ERL") or "erl", "-noinput", "-boot", "start_clean",
                # anything the node logs goes to stderr, never into our frames
                "-kernel", "logger", "[{handler,default,logger_std_h,#{config => #{type => standard_error}}}]",
                "-eval", _SERVER,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )

    # -- transport -----------------------------------------------------------

    def _read(self, n: int) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks = []
        while n:
            ready, _, _ = select.select([fd], [], [], self.timeout)
            if not ready:
                raise OracleError(f"oracle node silent for {self.timeout}s{self._log()}")
            chunk = os.read(fd, n)
            if not chunk:
                raise OracleError(f"oracle node exited{self._log()}")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _log(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return f": {text[-2000:]}" if text else ""

    def request(self, term: Any) -> Any:
        payload = encode(term)
        self.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
        (size,) = struct.unpack(">I", self._read(4))
        reply, _ = decode(self._read(size))
        if isinstance(reply, tuple) and reply and reply[0] == Atom("error"):
            raise OracleError(format_term(reply[1]))
        return reply

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()  # our own child, by pid
            self.proc.wait()
        finally:
            self._stderr.close()

    # -- requests ------------------------------------------------------------

    def roundtrip(self, data: bytes) -> bytes:
        """The node's term_to_binary of binary_to_term(data)."""
        return self.request((Atom("roundtrip"), data))[1]

    def equal(self, a: bytes, b: bytes) -> bool:
        """binary_to_term(a) =:= binary_to_term(b), judged by the node."""
        return self.request((Atom("equal"), a, b))[1]

    def check(self, data: bytes, source: str) -> tuple[bool, bytes]:
        """Does the node read `data` as the term `source` denotes? Also returns
        the node's own encoding of what it read."""
        _, same, node_bytes = self.request((Atom("check"), data, source.encode()))
        return same, node_bytes

    def eval(self, source: str, **bindings: Any) -> tuple[bytes, bytes]:
        """term_to_binary of the value of `source`, plain and compressed."""
        if bindings:
            pairs = [(name, encode(value)) for name, value in bindings.items()]
            reply = self.request((Atom("eval"), source.encode(), pairs))
        else:
            reply = self.request((Atom("eval"), source.encode()))
        return reply[1], reply[2]


def same_term(a: Any, b: Any) -> bool:
    """Exact equality of decoded terms: types must match too (1 vs 1.0 vs True,
    Atom vs str), floats bit for bit (-0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same_term(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        if len(a) != len(b):
            return False
        b_keys = {k: k for k in b}
        for key, value in a.items():
            if key not in b_keys:
                return False
            other = b_keys[key]
            if not same_term(key, other) or not same_term(value, b[other]):
                return False
        return True
    if type(a) is ImproperList:
        return same_term(a.elements, b.elements) and same_term(a.tail, b.tail)
    if type(a) is MapKey:
        return same_term(a.term, b.term)
    return a == b
