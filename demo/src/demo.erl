%% Application callback of the demo release, plus the health check that
%% deploy tools call after an upgrade.
-module(demo).
-behaviour(application).

-export([start/2, stop/1, health/0]).

start(_Type, _Args) ->
    demo_sup:start_link().

stop(_State) ->
    ok.

%% ok when the server answers; a crash (noproc, timeout) otherwise.
-spec health() -> ok.
health() ->
    _ = demo_server:count(),
    ok.
