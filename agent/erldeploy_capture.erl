%% A logger handler that catches crash reports during an upgrade window.
%%
%% The guard adds it before install_release and removes it after verification.
%% Each error-level event is turned into a small map of binaries *in the
%% logging process* (pids and records are only meaningful here) and sent to
%% the guard, which judges the install, and to the controller, which must hear
%% about a crash even if the node restarts a moment later.
-module(erldeploy_capture).

-export([add/2, remove/0, summarize/1, is_crash/1]).
-export([log/2]).                                   % logger handler callback

-define(HANDLER, erldeploy_capture).

-spec add(pid(), pid() | undefined) -> ok | {error, term()}.
add(Guard, Controller) ->
    _ = logger:remove_handler(?HANDLER),            % a leftover from a killed guard
    logger:add_handler(?HANDLER, ?MODULE,
                       #{level => error,
                         config => #{guard => Guard, controller => Controller}}).

-spec remove() -> ok.
remove() ->
    _ = logger:remove_handler(?HANDLER),
    ok.

%% Runs in the process that logged: keep it cheap and never let it raise
%% (logger would drop the handler and we would miss the rest of the window).
log(Event, #{config := #{guard := Guard, controller := Controller}}) ->
    try summarize(Event) of
        Summary ->
            Guard ! {erldeploy_log, Summary},
            erldeploy_agent:notify(Controller, {crash, Summary})
    catch
        _:_ -> ok
    end;
log(_Event, _Config) ->
    ok.

%% Crash-like events fail an install's verification; other errors are only shown.
-spec is_crash(map()) -> boolean().
is_crash(#{kind := Kind}) ->
    lists:member(Kind, [crash_report, supervisor_report, terminate]).

-spec summarize(logger:log_event()) -> map().
summarize(#{level := Level, msg := Msg, meta := Meta} = Event) ->
    {Kind, Who, Reason} = classify(Msg, Meta),
    #{kind => Kind,
      level => Level,
      who => Who,
      reason => Reason,
      text => text(Event),
      time_us => maps:get(time, Meta, erlang:system_time(microsecond))}.

classify({report, #{label := {proc_lib, crash}, report := [Info | _]}}, Meta) when is_list(Info) ->
    Who = first_known([proplists:get_value(registered_name, Info, []),
                       proplists:get_value(pid, Info), maps:get(pid, Meta, undefined)]),
    Reason = case proplists:get_value(error_info, Info) of
                 {_Class, R, _Stack} -> R;
                 Other -> Other
             end,
    {crash_report, Who, short_reason(Reason)};
classify({report, #{label := {supervisor, _}, report := Rep}}, _Meta) when is_list(Rep) ->
    Offender = proplists:get_value(offender, Rep, []),
    Who = case is_list(Offender) of
              true -> first_known([proplists:get_value(id, Offender),
                                   proplists:get_value(pid, Offender)]);
              false -> Offender
          end,
    {supervisor_report, Who, short_reason(proplists:get_value(reason, Rep))};
classify({report, #{label := {Behaviour, terminate}} = R}, Meta)
  when Behaviour =:= gen_server; Behaviour =:= gen_statem; Behaviour =:= gen_event ->
    Who = first_known([maps:get(name, R, undefined), maps:get(pid, Meta, undefined)]),
    {terminate, Who, short_reason(maps:get(reason, R, undefined))};
classify(_Msg, Meta) ->
    {error, erldeploy_fmt:term(maps:get(pid, Meta, undefined)), <<>>}.

short_reason(R) ->
    erldeploy_fmt:term(erldeploy_fmt:root_cause(R), 400).

first_known(Candidates) ->
    case [C || C <- Candidates, C =/= undefined, C =/= []] of
        [C | _] -> erldeploy_fmt:term(C);
        [] -> <<"unknown">>
    end.

%% The whole event as one line, with logger's own report callbacks.
text(Event) ->
    Cfg = #{single_line => true, legacy_header => false, template => [msg],
            chars_limit => 2000, depth => 30},
    try unicode:characters_to_binary(logger_formatter:format(Event, Cfg))
    catch _:_ -> erldeploy_fmt:term(maps:get(msg, Event))
    end.
