"""Everything status needs from a node in one round trip, with stock modules only.

One `erl_eval:exprs(Forms, [])` RPC per node returns a map of the raw answers status.py
reads (the same terms the separate RPCs used to return). The expression is parsed once
per controller process, on the first node asked (erl_scan + erl_parse there), and the
abstract forms are reused for every node: no code is loaded, and a node's work is the
calls themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import RpcError

Rpc = Callable[..., Awaitable[Any]]

# OTP_APPS: applications shipped with Erlang/OTP or Elixir; their modules are not checked
# for "modified on disk" (hashing every OTP beam costs each node ~30 ms of CPU per status).
_SOURCE = """
Root = code:root_dir(),
RdirEnv = application:get_env(sasl, releases_dir),
RelDir = case RdirEnv of {ok, D} -> D; _ -> Root ++ "/releases" end,
Rh = whereis(release_handler),
Rels = case Rh of
           undefined -> undefined;
           _ -> try release_handler:which_releases() catch _:_ -> undefined end
       end,
RelList = case Rels of undefined -> []; _ -> Rels end,
Running = [{N, V} || {N, V, _, current} <- RelList] ++ [{N, V} || {N, V, _, permanent} <- RelList],
Info = file:consult(RelDir ++ "/RELEASES"),
Script = case Running of
             [{Name, _} | _] -> file:read_file(Root ++ "/bin/" ++ Name);
             [] -> undefined
         end,
RelFiles = case {Info, Rh, Running} of
               {{ok, _}, _, _} -> undefined;
               {_, undefined, _} -> undefined;
               {_, _, [{_, Cur} | _]} -> filelib:wildcard("*.rel", RelDir ++ "/" ++ Cur);
               _ -> undefined
           end,
AppOf = fun(P) ->
            case lists:reverse(filename:split(P)) of
                [_, "ebin", AppDir | _] -> hd(string:split(AppDir, "-", trailing));
                _ -> none
            end
        end,
Modified = case FULL of
               false -> [];
               true ->
                   Mods = [M || {M, P} <- code:all_loaded(), is_list(P), not lists:member(AppOf(P), OTP_APPS)],
                   case Mods of
                       [] -> [];
                       _ -> [M || {M, modified} <- code:module_status(Mods)]
                   end
           end,
#{otp => erlang:system_info(otp_release), erts => erlang:system_info(version), root => Root,
  rdir_env => RdirEnv, apps => application:which_applications(),
  loaded => application:loaded_applications(), modified => Modified,
  wall => erlang:statistics(wall_clock), rh => Rh, cwd => file:get_cwd(), info => Info, rels => Rels,
  script_id => init:script_id(), start_erl => file:read_file(RelDir ++ "/start_erl.data"),
  var_start_erl => file:read_file(Root ++ "/var/start_erl.data"), script => Script,
  rel_files => RelFiles}.
"""

OTP_APPS = frozenset("""
asn1 common_test compiler crypto debugger dialyzer diameter edoc eldap erl_docgen erl_interface
erts et eunit ftp inets jinterface kernel megaco mnesia observer odbc os_mon parsetools public_key
reltool runtime_tools sasl snmp ssh ssl stdlib syntax_tools tftp tools wx xmerl
elixir logger iex mix eex ex_unit
""".split())

_forms: dict[bool, Any] = {}       # full -> the parsed expressions (plain terms, any node evaluates them)


def source(full: bool) -> str:
    apps = "[" + ", ".join(f'"{a}"' for a in sorted(OTP_APPS)) + "]"
    return _SOURCE.replace("FULL", "true" if full else "false").replace("OTP_APPS", apps)


async def prepare(rpc: Rpc, node: str, full: bool) -> Any:
    """The parsed expression (parsed on ``node`` the first time)."""
    if full not in _forms:
        scanned = await rpc(node, "erl_scan", "string", [source(full)])
        if not (isinstance(scanned, tuple) and scanned[0] == "ok"):
            raise RpcError(f"{node}: the status expression did not scan: {scanned!r}", node=node)
        parsed = await rpc(node, "erl_parse", "parse_exprs", [scanned[1]])
        if not (isinstance(parsed, tuple) and parsed[0] == "ok"):
            raise RpcError(f"{node}: the status expression did not parse: {parsed!r}", node=node)
        _forms[full] = parsed[1]
    return _forms[full]


async def raw(rpc: Rpc, node: str, full: bool) -> dict[str, Any]:
    """The node's answers, keyed as in _SOURCE's map."""
    forms = await prepare(rpc, node, full)
    value = await rpc(node, "erl_eval", "exprs", [forms, []])
    if not (isinstance(value, tuple) and len(value) == 3 and value[0] == "value" and isinstance(value[1], dict)):
        raise RpcError(f"{node}: unexpected status answer {value!r}", node=node, reason=value)
    return {str(k): v for k, v in value[1].items()}
