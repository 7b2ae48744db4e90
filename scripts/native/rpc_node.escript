#!/usr/bin/env escript
%%! -hidden
%% The native twin of `erldeploy rpc -n NODE erlang node`, for scripts/bench:
%% a hidden node named at run time, the cookie read from a file (never argv),
%% one rpc:call, the result printed as an Erlang term.
%%
%%   ERL_EPMD_PORT=P escript rpc_node.escript NODE COOKIE_FILE
-mode(compile).

main([Target, CookieFile]) ->
    Node = list_to_atom(Target),
    {ok, _} = net_kernel:start([self_name(Target), name_kind(Target)]),
    erlang:set_cookie(Node, read_cookie(CookieFile)),
    case rpc:call(Node, erlang, node, []) of
        {badrpc, Reason} ->
            io:format(standard_error, "rpc_node: ~0p: ~0p~n", [Node, Reason]),
            halt(1);
        Result ->
            io:format("~0p~n", [Result])
    end;
main(_) ->
    io:format(standard_error, "usage: rpc_node.escript NODE COOKIE_FILE~n", []),
    halt(2).

%% Same host naming as the target: long names for a dotted host, short otherwise.
self_name(Target) ->
    [_, Host] = string:split(Target, "@"),
    list_to_atom("rpcnat" ++ os:getpid() ++ "@" ++ Host).

name_kind(Target) ->
    [_, Host] = string:split(Target, "@"),
    case lists:member($., Host) of
        true -> longnames;
        false -> shortnames
    end.

read_cookie(File) ->
    {ok, Bin} = file:read_file(File),
    list_to_atom(string:trim(binary_to_list(Bin))).
