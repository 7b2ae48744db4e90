%% Top process of the demo application. It must be a supervisor: the
%% release_handler finds the processes to suspend for an {update, ...}
%% instruction by walking the supervision tree (which_children).
-module(demo_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

init([]) ->
    Flags = #{strategy => one_for_one, intensity => 5, period => 10},
    Server = #{id => demo_server,
               start => {demo_server, start_link, []},
               modules => [demo_server]},
    {ok, {Flags, [Server]}}.
