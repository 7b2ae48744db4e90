#!/usr/bin/env escript
%%! -hidden
%% The native twin of `erldeploy install VSN --tar TAR` for scripts/bench: on every
%% node at once, upload the tarball (file:write_file over rpc into the node's
%% releases dir), unpack_release, install_release, make_permanent. No preflight, no
%% verification, no rollback: the plain happy path an operator would script by hand.
%%
%%   ERL_EPMD_PORT=P escript install.escript COOKIE_FILE TAR VSN NODE...
%%
%% Prints {ok, Seconds, [{Node, [{Step, Seconds}]}]} (Seconds: from the tarball read
%% to every node permanent; then each node's step times) or exits 1 naming the node
%% and step that failed.
-mode(compile).

main([CookieFile, Tar, Vsn | [_ | _] = Targets]) ->
    Nodes = [list_to_atom(T) || T <- Targets],
    {ok, _} = net_kernel:start([self_name(hd(Targets)), name_kind(hd(Targets))]),
    Cookie = read_cookie(CookieFile),
    [erlang:set_cookie(N, Cookie) || N <- Nodes],
    {ok, Bin} = file:read_file(Tar),
    T0 = erlang:monotonic_time(microsecond),
    Parent = self(),
    Workers = [spawn_link(fun() -> Parent ! {self(), N, catch install(N, Bin, Tar, Vsn)} end)
               || N <- Nodes],
    Results = [receive {W, N, R} -> {N, R} end || W <- Workers],
    Secs = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    case [{N, R} || {N, R} <- Results, not is_list(R)] of
        [] ->
            io:format("~0p.~n", [{ok, Secs, Results}]);
        Failed ->
            [io:format(standard_error, "install: ~0p: ~0p~n", [N, R]) || {N, R} <- Failed],
            halt(1)
    end;
main(_) ->
    io:format(standard_error, "usage: install.escript COOKIE_FILE TAR VSN NODE...~n", []),
    halt(2).

install(Node, Bin, Tar, Vsn) ->
    Base = filename:basename(Tar),
    Stem = filename:basename(Tar, ".tar.gz"),
    RelDir = filename:join(call(Node, code, root_dir, []), "releases"),
    {ok, T1} = timed(upload, fun() -> call(Node, file, write_file, [filename:join(RelDir, Base), Bin]) end),
    {{ok, Vsn}, T2} = timed(unpack, fun() -> call(Node, release_handler, unpack_release, [Stem]) end),
    {{ok, _, _}, T3} = timed(install, fun() -> call(Node, release_handler, install_release,
                                                    [Vsn, [{update_paths, true}]]) end),
    {ok, T4} = timed(permanent, fun() -> call(Node, release_handler, make_permanent, [Vsn]) end),
    [{upload, T1}, {unpack, T2}, {install, T3}, {permanent, T4}].

%% Run one step; its answer and seconds, or an error naming the step.
timed(Step, Fun) ->
    T0 = erlang:monotonic_time(microsecond),
    R = check(Step, Fun()),
    {R, round((erlang:monotonic_time(microsecond) - T0) / 1000) / 1000}.

call(Node, M, F, A) ->
    rpc:call(Node, M, F, A, 300000).

check(Step, {badrpc, _} = R) -> error({Step, R});
check(Step, {error, _} = R) -> error({Step, R});
check(_, R) -> R.

self_name(Target) ->
    [_, Host] = string:split(Target, "@"),
    list_to_atom("instnat" ++ os:getpid() ++ "@" ++ Host).

name_kind(Target) ->
    [_, Host] = string:split(Target, "@"),
    case lists:member($., Host) of
        true -> longnames;
        false -> shortnames
    end.

read_cookie(File) ->
    {ok, Bin} = file:read_file(File),
    list_to_atom(string:trim(binary_to_list(Bin))).
