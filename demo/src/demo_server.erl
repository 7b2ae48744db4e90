%% The demo's stateful process: a counter with a history of bumps.
%%
%% One source for every release. scripts/demo_releases.py compiles it once
%% per version with -D VSN="0.0.N" -D SHAPE=N (and -D BROKEN for 0.0.4, whose
%% code_change crashes on purpose), so each release differs only where the
%% macros say.
%%
%% State shapes, converted both ways by code_change:
%%   1 (0.0.1)  {state, Count, History}
%%   2 (0.0.2)  #{count => Count, history => History}
%%   3 (0.0.3+) #{count => Count, history => History, last_bump => Vsn | none}
%% History is newest first: [{Vsn, CountAfterBump}].
-module(demo_server).
-behaviour(gen_server).
-vsn(?VSN).

-export([start_link/0, version/0, bump/0, count/0, get_state/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% The version of the code the server process is running now.
-spec version() -> string().
version() -> gen_server:call(?MODULE, version).

%% Increment the counter; returns the new count.
-spec bump() -> pos_integer().
bump() -> gen_server:call(?MODULE, bump).

-spec count() -> non_neg_integer().
count() -> gen_server:call(?MODULE, count).

%% The raw state, to show its shape.
get_state() -> gen_server:call(?MODULE, get_state).

init([]) ->
    {ok, shape(?SHAPE, {0, []})}.

handle_call(version, _From, State) ->
    {reply, ?VSN, State};
handle_call(bump, _From, State) ->
    {Count, History} = canonical(State),
    New = Count + 1,
    {reply, New, bumped(shape(?SHAPE, {New, [{?VSN, New} | History]}))};
handle_call(count, _From, State) ->
    {Count, _} = canonical(State),
    {reply, Count, State};
handle_call(get_state, _From, State) ->
    {reply, State, State}.

handle_cast(_Msg, State) ->
    {noreply, State}.

-ifdef(BROKEN).
code_change(_OldVsn, _State, _Extra) ->
    erlang:error(broken_on_purpose).
-else.
%% Downgrade: called in this (newer) module before the older one is loaded,
%% so convert to the shape the older version expects.
code_change({down, ToVsn}, State, _Extra) ->
    {ok, shape(shape_of(ToVsn), canonical(State))};
code_change(_FromVsn, State, _Extra) ->
    {ok, shape(?SHAPE, canonical(State))}.

shape_of("0.0.1") -> 1;
shape_of("0.0.2") -> 2;
shape_of(_) -> 3.
-endif.

%% --- state shapes -----------------------------------------------------

canonical({state, Count, History}) -> {Count, History};
canonical(#{count := Count, history := History}) -> {Count, History}.

shape(1, {Count, History}) -> {state, Count, History};
shape(2, {Count, History}) -> #{count => Count, history => History};
shape(_, {Count, History}) -> #{count => Count, history => History, last_bump => none}.

bumped(#{last_bump := _} = State) -> State#{last_bump := ?VSN};
bumped(State) -> State.
