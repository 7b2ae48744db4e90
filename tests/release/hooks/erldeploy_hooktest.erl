%% A user's release hooks, for tests (tests/release/test_restart.py): each call appends one
%% term to hooks.log in the node's cwd (its release root, so the file outlives restarts)
%% and prints one line through its group leader (erldeploy streams it back).
-module(erldeploy_hooktest).
-export([run/1, run/2, locked/0]).

run(Slot) -> run(Slot, none).

%% FailOn: the node on which the call answers {error, _}.
run(Slot, FailOn) ->
    Rels = lists:sort([{V, S} || {_, V, _, S} <- release_handler:which_releases()]),
    Line = io_lib:format("~p.~n", [{Slot, node(), os:getpid(), Rels}]),
    ok = file:write_file("hooks.log", Line, [append]),
    io:format("hook ~s ran on ~s~n", [Slot, node()]),
    case FailOn =:= node() of
        true -> {error, {refused_on, FailOn}};
        false -> ok
    end.

%% As a --verify: whether this run's deploy lock is held on this (restarted) node.
locked() ->
    Lock = case whereis(erldeploy_lock) of undefined -> free; _ -> held end,
    Line = io_lib:format("~p.~n", [{locked, node(), os:getpid(), [{"lock", Lock}]}]),
    ok = file:write_file("hooks.log", Line, [append]),
    ok.
