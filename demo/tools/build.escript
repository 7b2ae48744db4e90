#!/usr/bin/env escript
%% -*- erlang -*-
%% Runs a build plan written by scripts/demo_releases.py: a file of Erlang
%% terms, one step each, executed in order in this one emulator (starting
%% `erl` once per step would cost seconds). Any failed step prints the reason
%% and exits 1. The plan holds all version knowledge; this file only executes.
-mode(compile).

main([PlanFile]) ->
    {ok, Steps} = file:consult(PlanFile),
    lists:foreach(fun run/1, Steps);
main(_) ->
    io:format(standard_error, "usage: build.escript PLAN~n", []),
    halt(2).

run(Step) ->
    try step(Step) of
        ok -> ok;
        Other -> fail(Step, Other)
    catch
        Class:Reason:Stack -> fail(Step, {Class, Reason, Stack})
    end.

fail(Step, Why) ->
    io:format(standard_error, "build step failed: ~0p~n  ~p~n",
              [element(1, Step), Why]),
    halt(1).

step({compile, Src, OutDir, Defines}) ->
    Opts = [{outdir, OutDir}, return_errors, warnings_as_errors, debug_info
            | [define(D) || D <- Defines]],
    case compile:file(Src, Opts) of
        {ok, _Mod} -> ok;
        Error -> Error
    end;
step({write_term, File, Term}) ->
    file:write_file(File, io_lib:format("~tp.~n", [Term]));
step({make_script, Rel, Opts}) ->
    systools_result(systools:make_script(Rel, [silent | Opts]));
step({make_relup, Rel, Up, Down, Opts}) ->
    systools_result(systools:make_relup(Rel, Up, Down, [silent | Opts]));
step({make_tar, Rel, Opts}) ->
    systools_result(systools:make_tar(Rel, [silent | Opts]));
step({extract, Tar, Dir}) ->
    erl_tar:extract(Tar, [{cwd, Dir}, compressed]);
step({create_releases, Root, RelDir, RelFile}) ->
    release_handler:create_RELEASES(Root, RelDir, RelFile, []).

define({Name, Value}) -> {d, Name, Value};
define(Name) -> {d, Name}.

%% systools with `silent` returns {ok, Mod, Warnings} (make_relup:
%% {ok, Relup, Mod, Warnings}) or {error, Mod, Error}.
systools_result({ok, _Relup, Mod, Warnings}) -> systools_result({ok, Mod, Warnings});
systools_result({ok, _Mod, []}) -> ok;
systools_result({ok, Mod, Warnings}) ->
    io:format(standard_error, "~ts", [Mod:format_warning(Warnings)]),
    ok;
systools_result({error, Mod, Error}) ->
    {error, lists:flatten(Mod:format_error(Error))}.
