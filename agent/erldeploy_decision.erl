%% The one commit-or-roll-back decision of a guarded run, kept in the cluster.
%%
%% The controller starts one decision process per run on the first node it
%% changes (the canary). It holds a single value that moves once, from
%% undecided to commit or to abort, and never back; its mailbox orders every
%% claim, so whoever asks first decides:
%%   - the controller asks for commit once every guard is ready;
%%   - a guard whose lease ran out asks to resolve, which decides abort when
%%     nothing was decided yet (so a guard never commits on its own after its
%%     lease expired: it commits only when commit was decided before);
%%   - the controller's connection dropping (it died) decides abort.
%% The decision is written to persistent_term on this node before anyone hears
%% it, then pushed to every guard of the run, so a controller that dies right
%% after deciding leaves a cluster that finishes the job by itself. A guard
%% that cannot reach this process reads the recorded decision on every peer
%% (resolve/4) before it rolls back: only a partition between nodes can then
%% leave a split, and the guard says so in its outcome.
-module(erldeploy_decision).

-export([start/4, decide/3, resolve/4, ack/2, recorded/1]).
-export([init/4]).

-define(KEY(Run), {erldeploy_decision, Run}).
-define(CALL_MS, 10000).
-define(PEER_READ_MS, 2000).

%% ---------------------------------------------------------------- API

%% Started from the controller's rpc (the process is not linked to the worker).
-spec start(binary(), pid(), [node()], non_neg_integer()) -> {ok, pid()}.
start(Run, Controller, Peers, LingerMs) ->
    {ok, spawn(?MODULE, init, [Run, Controller, Peers, LingerMs])}.

%% The controller's claim: commit | abort. Answers the decision that holds.
-spec decide(pid(), binary(), commit | abort) -> {decided, commit | abort, term()} | {error, term()}.
decide(Pid, Run, D) when D =:= commit; D =:= abort ->
    call(Pid, {decide, Run, D, controller}).

%% A guard whose lease ran out: the decision, abort if there was none. When the
%% decision process cannot be reached, what any peer recorded.
-spec resolve(pid() | undefined, binary(), node(), [node()]) ->
          {commit | abort, term()} | {unknown, term()}.
resolve(Pid, Run, Me, Peers) ->
    case is_pid(Pid) andalso call(Pid, {decide, Run, abort, {lease_expired, Me}}) of
        {decided, D, Why} -> {D, Why};
        Other ->
            Why = case Other of false -> no_decider; {error, R} -> R end,
            Nodes = lists:usort([node(Pid) || is_pid(Pid)] ++ Peers) -- [node()],
            Seen = [{N, read(N, Run)} || N <- Nodes],
            case [N || {N, {commit, _}} <- Seen] of
                [N | _] -> {commit, {recorded_on, N}};
                [] ->
                    case [N || {N, {abort, _}} <- Seen] of
                        [N | _] -> {abort, {recorded_on, N}};
                        [] -> {unknown, {Why, [{N, R} || {N, R} <- Seen]}}
                    end
            end
    end.

%% A guard has acted on the decision: the process may end once all have.
-spec ack(pid() | undefined, node()) -> ok.
ack(Pid, Node) when is_pid(Pid) ->
    _ = erlang:send(Pid, {ack, Node}, [noconnect, nosuspend]),
    ok;
ack(_, _) ->
    ok.

%% The decision recorded on this node for Run: {commit | abort, Why} | undefined.
-spec recorded(binary()) -> {commit | abort, term()} | undefined.
recorded(Run) ->
    persistent_term:get(?KEY(Run), undefined).

%% ---------------------------------------------------------------- the process

init(Run, Controller, Peers, LingerMs) ->
    Mon = case is_pid(Controller) of
              true -> erlang:monitor(process, Controller);
              false -> undefined
          end,
    loop(#{run => Run, controller => Controller, mon => Mon, peers => Peers,
           waiting => Peers, linger => LingerMs, decision => undefined}).

loop(#{run := Run, mon := Mon, decision := Decision, linger := Linger} = S) ->
    Timeout = case Decision of undefined -> infinity; _ -> Linger end,
    receive
        {erldeploy_decision_req, From, Ref, {decide, Run, D, Who}} ->
            S1 = set(D, Who, S),
            {D1, Why} = maps:get(decision, S1),
            From ! {Ref, {decided, D1, Why}},
            loop(S1);
        {erldeploy_decision_req, From, Ref, {decide, Other, _, _}} ->
            From ! {Ref, {error, {wrong_run, Other}}},
            loop(S);
        {ack, Node} ->
            S1 = S#{waiting := lists:delete(Node, maps:get(waiting, S))},
            case {maps:get(waiting, S1), Decision} of
                {[], {_, _}} -> done(S1);
                _ -> loop(S1)
            end;
        {'DOWN', Mon, process, _, Reason} ->
            loop(set(abort, {controller_down, Reason}, S#{mon := undefined}))
    after Timeout ->
            %% Every guard has resolved long since (a lease is shorter than this).
            ok
    end.

%% The first claim wins; later ones are answered with it.
set(D, Who, #{decision := undefined, run := Run, peers := Peers, controller := C} = S) ->
    Decision = {D, Who},
    persistent_term:put(?KEY(Run), Decision),
    [erlang:send({erldeploy_guard, N}, {erldeploy_decision, Run, D}, [noconnect, nosuspend])
     || N <- Peers],
    erldeploy_agent:notify(C, {decided, D, Who}),
    S#{decision := Decision};
set(_, _, S) ->
    S.

done(#{run := Run}) ->
    %% Every guard acted: nobody will ask again.
    _ = persistent_term:erase(?KEY(Run)),
    ok.

%% ---------------------------------------------------------------- helpers

call(Pid, Req) ->
    Mon = erlang:monitor(process, Pid),
    Pid ! {erldeploy_decision_req, self(), Mon, Req},
    receive
        {Mon, Reply} ->
            erlang:demonitor(Mon, [flush]),
            Reply;
        {'DOWN', Mon, process, Pid, Reason} ->
            {error, {decider_gone, Reason}}
    after ?CALL_MS ->
            erlang:demonitor(Mon, [flush]),
            {error, timeout}
    end.

read(Node, Run) when Node =:= node() ->
    recorded(Run);
read(Node, Run) ->
    try erpc:call(Node, persistent_term, get, [?KEY(Run), undefined], ?PEER_READ_MS)
    catch Class:Reason -> {unreachable, {Class, Reason}}
    end.
