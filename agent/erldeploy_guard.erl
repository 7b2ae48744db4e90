%% The guarded install: one node's upgrade step, made safe on the node itself.
%%
%% A guard process (registered as erldeploy_guard, not linked to the rpc worker
%% that started it, so a lost controller cannot take it down) checks, installs
%% and verifies a release, then holds a lease: without renew/commit before the
%% lease runs out, it installs the previous release again through the relup's
%% down section. The controller only orchestrates; this process decides what
%% happens to the node when the controller is gone.
%%
%% In a run with a decision process (erldeploy_decision: opts run, decider,
%% peers), commit or roll back is that one decision: it is pushed here as soon
%% as it is taken, and a guard whose lease runs out asks for it (abort when
%% nothing was decided) instead of rolling back on its own; so the guards of
%% one run all end on the same release, whoever of them is left to act.
-module(erldeploy_guard).

-export([install/2, request/2, status/0]).
-export([init/4]).

-define(NAME, erldeploy_guard).
-define(INFO_KEY, '$erldeploy_guard').
-define(DEFAULT_LEASE_MS, 60000).
%% The capture stays on until commit, and a crash before commit refuses it, so the
%% window before replying only has to catch what follows the code change at once.
-define(DEFAULT_SETTLE_MS, 50).
-define(DEFAULT_VERIFY_TIMEOUT_MS, 30000).
-define(UNLOAD_DELAY_MS, 500).
-define(RESTART_PROBE_MS, 300).
-define(TAIL_MS, 50).
-define(MAX_RAW_REASON, 4096).   % bytes of external format; bigger reasons go as text
-define(INSTALL_OPTS, [{update_paths, true}]).

%% ================================================================ API

%% Runs in the rpc worker: starts the guard and waits for its verdict.
-spec install(string(), map()) -> {ok, map()} | {error, atom(), term(), map()}.
install(Vsn, Opts) when is_map(Opts) ->
    Ref = make_ref(),
    Pid = spawn(?MODULE, init, [self(), Ref, Vsn, Opts]),
    Mon = erlang:monitor(process, Pid),
    Timeout = case maps:get(install_timeout, Opts, infinity) of
                  T when is_integer(T), T >= 0 -> T;
                  _ -> infinity
              end,
    receive
        {Ref, Result} ->
            erlang:demonitor(Mon, [flush]),
            Result;
        {'DOWN', Mon, process, Pid, Reason} ->
            {error, guard, {guard_died, erldeploy_fmt:term(Reason)}, #{to => Vsn}}
    after Timeout ->
            %% The install itself cannot be interrupted; the guard finishes it,
            %% and its lease still protects the node if nobody commits.
            erlang:demonitor(Mon, [flush]),
            {error, install, timeout, #{to => Vsn, guard => status()}}
    end.

%% renew is fire-and-forget once the guard is known to hold Vsn; commit and
%% abort wait for the guard's answer (abort runs a downgrade: may take long).
-spec request(string(), renew | ready | commit | abort) -> term().
request(Vsn, Op) ->
    case whereis(?NAME) of
        undefined when Op =:= commit ->
            %% The decision may have reached the guard first: it committed and ended.
            case erldeploy_agent:last_outcome() of
                #{vsn := Vsn, result := committed} -> ok;
                _ -> {error, no_guard}
            end;
        undefined ->
            {error, no_guard};
        Pid ->
            case status() of
                #{vsn := Vsn, phase := Phase} when Op =:= renew ->
                    case lists:member(Phase, [checking, installing, verifying, waiting_commit]) of
                        true -> Pid ! {erldeploy_renew, Vsn}, ok;
                        false -> {error, {guard_phase, Phase}}
                    end;
                #{vsn := Vsn} ->
                    call(Pid, {Op, Vsn});
                #{vsn := Other} ->
                    {error, {wrong_vsn, Other}};
                undefined ->
                    {error, no_guard}
            end
    end.

call(Pid, Req) ->
    Mon = erlang:monitor(process, Pid),
    Pid ! {erldeploy_req, self(), Mon, Req},
    receive
        {Mon, Reply} ->
            erlang:demonitor(Mon, [flush]),
            Reply;
        {'DOWN', Mon, process, Pid, Reason} ->
            {error, {guard_gone, Reason}}
    end.

%% What the guard is doing, read from its process dictionary so that it never
%% waits on a guard that is busy inside release_handler.
-spec status() -> map() | undefined.
status() ->
    case whereis(?NAME) of
        undefined -> undefined;
        Pid ->
            case erlang:process_info(Pid, dictionary) of
                {dictionary, D} ->
                    case lists:keyfind(?INFO_KEY, 1, D) of
                        {_, #{deadline := Deadline} = Info} ->
                            Left = case Deadline of
                                       undefined -> undefined;
                                       _ -> max(0, Deadline - now_ms())
                                   end,
                            maps:remove(deadline, Info#{pid => Pid, lease_left_ms => Left});
                        false -> undefined
                    end;
                undefined -> undefined
            end
    end.

%% ================================================================ the guard

init(Caller, Ref, Vsn, Opts) ->
    case catch register(?NAME, self()) of
        true ->
            set_group_leader(),
            S = #{vsn => Vsn,
                  caller => Caller, ref => Ref, replied => false,
                  controller => controller(Opts),
                  lease_ms => int_opt(lease_ms, Opts, ?DEFAULT_LEASE_MS),
                  settle_ms => int_opt(settle_ms, Opts, ?DEFAULT_SETTLE_MS),
                  verify_timeout => int_opt(verify_timeout, Opts, ?DEFAULT_VERIFY_TIMEOUT_MS),
                  verify => maps:get(verify, Opts, undefined),
                  expected_apps => maps:get(expected_apps, Opts, []),
                  run => maps:get(run, Opts, undefined),
                  decider => case maps:get(decider, Opts, undefined) of
                                 D when is_pid(D) -> D;
                                 _ -> undefined
                             end,
                  peers => [N || N <- maps:get(peers, Opts, []), is_atom(N)],
                  from => undefined, timings => #{}, crashes => [], errors => [],
                  deadline => undefined, phase => starting},
            try
                run(S)
            catch
                Class:Reason:Stack ->
                    %% A bug here must still leave the node's story on record.
                    _ = erldeploy_capture:remove(),
                    Why = erldeploy_fmt:term({Class, Reason, Stack}),
                    outcome(guard_crashed, Why, S),
                    reply(S, {error, guard, {guard_crashed, Why}, #{to => Vsn}})
            end;
        _ ->
            Caller ! {Ref, {error, check, {guard_active, status()}, #{to => Vsn}}}
    end.

run(S0) ->
    S = phase(checking, S0),
    case prepare(S) of
        {ok, S1} ->
            install_and_verify(S1);
        {error, Reason, S1} ->
            outcome(check_failed, Reason, S1),
            end_guard(reply(S1, {error, check, Reason, report(S1)}))
    end.

%% Everything before the point of no return: the node is still untouched.
prepare(#{vsn := Vsn} = S) ->
    case current_release() of
        {ok, Vsn} ->
            {error, {already_current, Vsn}, S};
        {ok, From} ->
            S1 = S#{from := From},
            {Ms, Res} = timed(fun() -> catch release_handler:check_install_release(Vsn, [purge]) end),
            S2 = timing(check, Ms, S1),
            case Res of
                {ok, _, _} -> {ok, S2};
                {error, R} -> {error, R, S2};
                {'EXIT', R} -> {error, R, S2}
            end;
        {error, R} ->
            {error, R, S}
    end.

install_and_verify(#{vsn := Vsn, controller := C} = S0) ->
    S = phase(installing, S0),
    ok = erldeploy_capture:add(self(), C),
    erldeploy_agent:notify(C, {stage, install, started}),
    {Ms, Res} = timed(fun() -> catch release_handler:install_release(Vsn, ?INSTALL_OPTS) end),
    S1 = timing(install, Ms, S),
    case Res of
        {ok, _, _} ->
            erldeploy_agent:notify(C, {stage, install, Ms}),
            verify(S1);
        {continue_after_restart, _, _} ->
            %% The relup reboots into a new emulator: nothing survives to guard it.
            _ = erldeploy_capture:remove(),
            erldeploy_agent:notify_sync(C, {install_restarting, Vsn}),
            outcome(install_restarting, continue_after_restart, S1),
            end_guard(reply(S1, {error, install, continue_after_restart, report(S1)}));
        {error, R} ->
            install_failed(R, S1);
        {'EXIT', R} ->
            install_failed(R, S1);
        Other ->
            install_failed({unexpected_reply, Other}, S1)
    end.

%% install_release failed. Before the point of no return the node is as it was;
%% after it release_handler restarts the node into its permanent release, and
%% this process has a few milliseconds left: tell the controller first.
install_failed(Reason, #{controller := C} = S0) ->
    Restarting = node_restarting(),
    S = drain_logs(S0),
    _ = erldeploy_capture:remove(),
    Info = #{reason => erldeploy_fmt:term(Reason),
             root_cause => erldeploy_fmt:term(erldeploy_fmt:root_cause(Reason), 500),
             node_restarting => Restarting},
    erldeploy_agent:notify_sync(C, {install_failed, Info}),
    S1 = S#{install_error => Info},
    outcome(install_failed, Info, S1),
    end_guard(reply(S1, {error, install, compact(Reason), report(S1)})).

verify(#{controller := C} = S0) ->
    S = phase(verifying, S0),
    T0 = now_ms(),
    S1 = settle(S),
    Checks = [fun check_current/1, fun check_apps/1, fun check_call/1],
    Failures0 = lists:append([F(S1) || F <- Checks]),
    %% The verify call may have crashed something; its report is logged by the
    %% dying process, a moment after the call returned. Without a verify call the
    %% settle window above has covered the install already.
    S2 = case maps:get(verify, S1) of
             V when V =:= undefined; V =:= none; V =:= nil -> drain_logs(S1);
             _ -> collect_until(now_ms() + ?TAIL_MS, S1)
         end,
    Failures = Failures0 ++ check_crashes(S2),
    S3 = timing(verify, now_ms() - T0, S2),
    case Failures of
        [] ->
            erldeploy_agent:notify(C, {stage, verify, ok}),
            S4 = reply(S3, {ok, report(S3)}),
            wait_commit(start_lease(S4));
        _ ->
            erldeploy_agent:notify(C, {verify_failed, Failures}),
            S4 = rollback(verify_failed, S3),
            _ = erldeploy_capture:remove(),
            outcome(verify_failed, Failures, S4),
            end_guard(reply(S4, {error, verify, Failures, report(S4)}))
    end.

%% Crashes often follow the code change by a few milliseconds (a timer
%% message handled by new code): give them a short window to show up.
settle(#{settle_ms := Ms} = S) ->
    Deadline = now_ms() + Ms,
    collect_until(Deadline, S).

collect_until(Deadline, S) ->
    Left = max(0, Deadline - now_ms()),
    receive
        {erldeploy_log, Event} -> collect_until(Deadline, add_log(Event, S))
    after Left -> S
    end.

drain_logs(S) ->
    receive
        {erldeploy_log, Event} -> drain_logs(add_log(Event, S))
    after 0 -> S
    end.

add_log(Event, #{crashes := Cs, errors := Es} = S) ->
    case erldeploy_capture:is_crash(Event) of
        true -> S#{crashes := Cs ++ [Event]};
        false -> S#{errors := Es ++ [Event]}
    end.

check_current(#{vsn := Vsn}) ->
    case current_release() of
        {ok, Vsn} -> [];
        {ok, Other} -> [{not_current, Other}];
        {error, R} -> [{not_current, R}]
    end.

%% Versions of the release's applications that run must match the .rel. Apps that do
%% not run are left alone, as the controller's own check does: `load` / `none` start
%% types and included applications are in the .rel but never in which_applications().
check_apps(#{expected_apps := Expected}) ->
    Running = [{A, V} || {A, _, V} <- application:which_applications()],
    Bad = lists:filtermap(
            fun({App0, Want0}) ->
                    App = app_name(App0),
                    Want = erldeploy_fmt:to_list(Want0),
                    case lists:keyfind(App, 1, Running) of
                        {_, Want} -> false;
                        {_, Have} -> {true, {App0, Want, Have}};
                        false -> false
                    end;
               (_) -> false
            end, Expected),
    case Bad of
        [] -> [];
        _ -> [{app_versions, Bad}]
    end.

app_name(A) when is_atom(A) -> A;
app_name(Name) ->
    try list_to_existing_atom(erldeploy_fmt:to_list(Name))
    catch error:badarg -> Name             % never loaded here, so never running
    end.

%% The health call runs in its own process: it may hang or crash.
check_call(#{verify := {M, F, A}, verify_timeout := Timeout}) when is_list(A) ->
    {Pid, Mon} = spawn_monitor(fun() -> exit({verify_result, catch apply(M, F, A)}) end),
    receive
        {'DOWN', Mon, process, Pid, {verify_result, R}} when R =:= ok; R =:= true -> [];
        {'DOWN', Mon, process, Pid, {verify_result, R}} ->
            [{verify_call, erldeploy_fmt:term(R, 500)}];
        {'DOWN', Mon, process, Pid, R} ->
            [{verify_call, erldeploy_fmt:term(R, 500)}]
    after Timeout ->
            exit(Pid, kill),
            erlang:demonitor(Mon, [flush]),
            [{verify_call, timeout}]
    end;
check_call(#{verify := V}) when V =:= undefined; V =:= none; V =:= nil ->
    [];
check_call(#{verify := V}) ->
    [{verify_call, {bad_verify_spec, erldeploy_fmt:term(V)}}].

check_crashes(#{crashes := []}) -> [];
check_crashes(#{crashes := Cs}) ->
    [{crashed, [{maps:get(who, C), maps:get(reason, C)} || C <- Cs]}].

%% ---------------------------------------------------------------- lease

start_lease(#{lease_ms := L} = S) ->
    publish(S#{phase := waiting_commit, deadline := now_ms() + L}).

wait_commit(#{vsn := Vsn, deadline := Deadline, run := Run} = S) ->
    Left = max(0, Deadline - now_ms()),
    receive
        {erldeploy_renew, Vsn} ->
            wait_commit(start_lease(S));
        {erldeploy_decision, Run, commit} when Run =/= undefined ->
            decided_commit(commit_pushed, S);
        {erldeploy_decision, Run, abort} when Run =/= undefined ->
            decided_abort(decided_abort, S);
        {erldeploy_req, From, Ref, {ready, Vsn}} ->
            %% Before the controller claims commit: no process crashed under the new release.
            S1 = drain_logs(S),
            From ! {Ref, case check_crashes(S1) of [] -> ok; Crashed -> {error, Crashed} end},
            wait_commit(S1);
        {erldeploy_req, From, Ref, {commit, Vsn}} when is_pid(map_get(decider, S)) ->
            %% The controller asks only after commit was decided: the decision binds.
            commit(From, Ref, S);
        {erldeploy_req, From, Ref, {commit, Vsn}} ->
            case check_crashes(drain_logs(S)) of
                [] -> commit(From, Ref, S);
                Crashed ->
                    %% A process crashed under the new release after it was verified:
                    %% no commit; the controller (or the lease) rolls the node back.
                    From ! {Ref, {error, Crashed}},
                    wait_commit(drain_logs(S))
            end;
        {erldeploy_req, From, Ref, {abort, Vsn}} ->
            _ = erldeploy_capture:remove(),
            S1 = phase(ended, rollback(aborted, S)),
            ack(S1),
            outcome(aborted, abort, S1),
            From ! {Ref, rollback_reply(S1)},
            end_guard(S1);
        {erldeploy_req, From, Ref, {_Op, Other}} ->
            From ! {Ref, {error, {wrong_vsn, Other}}},
            wait_commit(S);
        {erldeploy_log, Event} ->
            wait_commit(add_log(Event, S))   % crashes after verify block the commit
    after Left ->
            lease_expired(S)
    end.

%% No commit, no renewal: without a decision process, roll back; with one, ask it
%% (which decides abort if nothing was decided), or failing that what the peers recorded.
lease_expired(#{decider := undefined, vsn := Vsn, controller := C} = S) ->
    erldeploy_agent:notify(C, {lease_expired, Vsn}),
    decided_abort(lease_expired, S);
lease_expired(#{decider := D, run := Run, peers := Peers, vsn := Vsn, controller := C} = S) ->
    erldeploy_agent:notify(C, {lease_expired, Vsn}),
    S1 = phase(resolving, S),
    case erldeploy_decision:resolve(D, Run, node(), Peers) of
        {commit, Why} -> decided_commit({lease_expired, commit, Why}, S1);
        {abort, _Why} -> decided_abort(lease_expired, S1);
        {unknown, Why} ->
            %% Nobody reachable knows of a commit: roll back, and say a partition may split the cluster.
            decided_abort(lease_expired, S1#{split_risk => Why})
    end.

%% The run's decision was commit: make the release permanent without the controller.
decided_commit(Why, #{vsn := Vsn, controller := C} = S) ->
    _ = erldeploy_capture:remove(),
    S1 = phase(committing, S),
    case catch release_handler:make_permanent(Vsn) of
        ok ->
            S2 = (phase(committed, S1))#{committed => true},
            ack(S2),
            outcome(committed, Why, S2),
            erldeploy_agent:notify(C, {committed, Vsn}),
            end_guard(S2#{orphan => true});
        Error ->
            S2 = S1#{commit_error => error_reason(Error)},
            outcome(commit_failed, error_reason(Error), S2),
            logger:error("erldeploy: release ~ts was decided permanent but make_permanent failed: ~ts",
                         [Vsn, erldeploy_fmt:term(Error)]),
            end_guard(S2#{orphan => true})
    end.

decided_abort(Why, #{vsn := Vsn} = S) ->
    _ = erldeploy_capture:remove(),
    S1 = rollback(Why, S),
    ack(S1),
    outcome(Why, maps:get(split_risk, S1, Why), S1),
    logger:warning("erldeploy: release ~ts not committed (~w); rolled back: ~ts",
                   [Vsn, Why, erldeploy_fmt:term(maps:get(rollback, S1))]),
    %% The controller is gone or has given up, so nobody else may remove the agent.
    end_guard(S1#{orphan => true}).

ack(#{decider := D}) ->
    erldeploy_decision:ack(D, node()).

commit(From, Ref, #{vsn := Vsn, controller := C} = S) ->
    _ = erldeploy_capture:remove(),
    S1 = phase(committing, S),
    case catch release_handler:make_permanent(Vsn) of
        ok ->
            %% Record first: once the controller has its answer it may
            %% unload the agent, and the guard must not look busy then.
            S2 = (phase(committed, S1))#{committed => true},
            ack(S2),
            outcome(committed, commit, S2),
            erldeploy_agent:notify(C, {committed, Vsn}),
            From ! {Ref, ok},
            end_guard(S2);
        Error ->
            %% Still installed and still under lease: the controller decides.
            From ! {Ref, {error, error_reason(Error)}},
            ok = erldeploy_capture:add(self(), C),
            wait_commit(phase(waiting_commit, S))
    end.

%% Back to the release the node ran before, through the relup's down section.
rollback(Why, #{from := From, controller := C} = S0) ->
    S = phase(rolling_back, S0),
    {Ms, Res} = timed(fun() -> catch release_handler:install_release(From, ?INSTALL_OPTS) end),
    Result = case Res of
                 {ok, _, _} -> {ok, rolled_back_to, From};
                 Error -> {error, error_reason(Error)}
             end,
    erldeploy_agent:notify_sync(C, {rollback, Why, Result}),
    timing(rollback, Ms, S#{rollback => Result, rollback_why => Why}).

rollback_reply(#{rollback := {ok, rolled_back_to, From}}) -> {ok, rolled_back_to, From};
rollback_reply(#{rollback := {error, R}}) -> {error, R}.

error_reason({error, R}) -> compact(R);
error_reason({'EXIT', R}) -> compact(R);
error_reason(R) -> compact(R).

%% ---------------------------------------------------------------- endings

%% Answer anyone still waiting, so a commit racing a rollback gets an answer;
%% when no controller is left to do it, remove the agent from the node.
end_guard(S0) ->
    S = phase(ended, S0),
    Why = maps:get(rollback_why, S, ended),
    receive
        {erldeploy_req, From, Ref, {commit, _}} when is_map_key(committed, S) ->
            From ! {Ref, ok},
            end_guard(S);
        {erldeploy_req, From, Ref, _} ->
            From ! {Ref, {error, {guard_ended, Why}}},
            end_guard(S)
    after 0 ->
            case maps:get(orphan, S, false) of
                true -> erldeploy_agent:schedule_unload(?UNLOAD_DELAY_MS);
                false -> ok
            end
    end.

reply(#{replied := true} = S, _Result) ->
    S;
reply(#{caller := Caller, ref := Ref} = S0, Result) ->
    %% Anything but {ok, _} ends the guard: say so before the caller hears it.
    S = case Result of
            {ok, _} -> S0;
            _ -> phase(ended, S0)
        end,
    Caller ! {Ref, Result},
    case is_process_alive(Caller) of
        true -> S#{replied := true};
        false ->
            %% Nobody waits for the verdict (install_timeout passed or the
            %% rpc worker died): the record is all that is left.
            S#{replied := true, orphan => true}
    end.

outcome(Result, Why, #{vsn := Vsn, from := From} = S) ->
    erldeploy_agent:set_last_outcome(
      #{vsn => Vsn, from => From, result => Result,
        why => Why,
        at => list_to_binary(calendar:system_time_to_rfc3339(erlang:system_time(second))),
        report => report(S)}).

report(#{vsn := Vsn, from := From, timings := T, crashes := Cs, errors := Es} = S) ->
    Base = #{from => From, to => Vsn, timings => T, crashes => Cs, errors => Es,
             releases => releases()},
    Extra = maps:with([rollback, rollback_why, install_error, split_risk, commit_error], S),
    maps:merge(Base, Extra).

%% ---------------------------------------------------------------- helpers

current_release() ->
    case catch release_handler:which_releases() of
        Rels when is_list(Rels) ->
            case [V || {_, V, _, current} <- Rels] of
                [V | _] -> {ok, V};
                [] ->
                    case [V || {_, V, _, permanent} <- Rels] of
                        [V | _] -> {ok, V};
                        [] -> {error, no_current_release}
                    end
            end;
        {'EXIT', {noproc, _}} ->
            {error, release_handler_not_running};
        Other ->
            {error, compact(Other)}
    end.

releases() ->
    case catch release_handler:which_releases() of
        Rels when is_list(Rels) -> [{V, St} || {_, V, _, St} <- Rels];
        _ -> []
    end.

%% init:restart/0 is asynchronous: release_handler calls it right after replying.
node_restarting() ->
    node_restarting(now_ms() + ?RESTART_PROBE_MS).

node_restarting(Deadline) ->
    case init:get_status() of
        {stopping, _} -> true;
        _ ->
            case now_ms() >= Deadline of
                true -> false;
                false -> timer:sleep(20), node_restarting(Deadline)
            end
    end.

compact(Reason) ->
    case erlang:external_size(Reason) > ?MAX_RAW_REASON of
        true -> erldeploy_fmt:term(Reason);
        false -> Reason
    end.

controller(Opts) ->
    case maps:get(controller, Opts, undefined) of
        P when is_pid(P) -> P;
        _ -> undefined
    end.

int_opt(Key, Opts, Default) ->
    case maps:get(Key, Opts, Default) of
        V when is_integer(V), V >= 0 -> V;
        _ -> Default
    end.

phase(Phase, S) ->
    publish(S#{phase := Phase}).

publish(#{vsn := Vsn, from := From, phase := Phase, deadline := Deadline,
          controller := C, lease_ms := L} = S) ->
    put(?INFO_KEY, #{vsn => Vsn, from => From, phase => Phase, deadline => Deadline,
                     controller => C, lease_ms => L}),
    S.

timing(Stage, Ms, #{timings := T} = S) ->
    S#{timings := T#{Stage => Ms}}.

timed(Fun) ->
    T0 = now_ms(),
    R = Fun(),
    {now_ms() - T0, R}.

now_ms() ->
    erlang:monotonic_time(millisecond).

set_group_leader() ->
    case whereis(user) of
        undefined -> ok;
        U -> group_leader(U, self())
    end.
