%% The erldeploy agent: the API the controller calls over rpc.
%%
%% The agent is loaded into a node with code:load_binary/3 for the length of
%% one operation and removed afterwards. Everything here returns plain terms
%% (maps, binaries, charlists for paths) so any distribution client can read it.
-module(erldeploy_agent).

-export([info/0, status/0, modules/0, releases_dir/0]).
-export([upload_open/5, upload_finish/1]).
-export([guard_install/2, renew/1, ready/1, commit/1, abort/1]).
-export([notify/2, notify_sync/2, schedule_unload/1, last_outcome/0, set_last_outcome/1]).

-define(VERSION, <<"0.1.0">>).
-ifndef(SOURCE_SHA256).
-define(SOURCE_SHA256, "unknown").
-endif.
-define(OUTCOME_KEY, {erldeploy_agent, last_outcome}).

%% ---------------------------------------------------------------- identity

-spec info() -> map().
info() ->
    #{version => ?VERSION,
      otp => erlang:system_info(otp_release),
      source_sha256 => list_to_binary(?SOURCE_SHA256),
      algos => algos(),
      modules => [{M, loaded_md5(M)} || M <- modules()],
      guard => erldeploy_guard:status(),
      last_outcome => last_outcome()}.

%% What `erldeploy agent status` shows for one node.
-spec status() -> map().
status() ->
    #{node => node(),
      version => ?VERSION,
      source_sha256 => list_to_binary(?SOURCE_SHA256),
      modules => [{M, loaded_md5(M)} || M <- modules()],
      guard => erldeploy_guard:status(),
      uploads => erldeploy_upload:active(),
      last_outcome => last_outcome()}.

%% Every module of the agent, in the order they can be loaded.
-spec modules() -> [module()].
modules() ->
    [erldeploy_fmt, erldeploy_capture, erldeploy_upload, erldeploy_relay, erldeploy_decision, erldeploy_guard,
     erldeploy_agent].

loaded_md5(M) ->
    case code:is_loaded(M) of
        false -> undefined;
        _ -> erldeploy_fmt:hex(M:module_info(md5))
    end.

algos() ->
    Sha = try _ = crypto:hash_init(sha256), [sha256]
          catch _:_ -> []
          end,
    Sha ++ [md5].

%% Where release_handler looks for releases (and tarballs).
-spec releases_dir() -> string().
releases_dir() ->
    case application:get_env(sasl, releases_dir) of
        {ok, Dir} -> erldeploy_fmt:to_list(Dir);
        undefined ->
            case os:getenv("RELDIR") of
                false -> filename:join(code:root_dir(), "releases");
                Dir -> Dir
            end
    end.

%% ---------------------------------------------------------------- upload

upload_open(Name, Size, Algo, Digest, Owner) ->
    erldeploy_upload:open(Name, Size, Algo, Digest, Owner).

upload_finish(Pid) ->
    erldeploy_upload:finish(Pid).

%% ---------------------------------------------------------------- guard

guard_install(Vsn, Opts) ->
    erldeploy_guard:install(erldeploy_fmt:to_list(Vsn), Opts).

renew(Vsn) ->
    erldeploy_guard:request(erldeploy_fmt:to_list(Vsn), renew).

ready(Vsn) ->
    erldeploy_guard:request(erldeploy_fmt:to_list(Vsn), ready).

commit(Vsn) ->
    erldeploy_guard:request(erldeploy_fmt:to_list(Vsn), commit).

abort(Vsn) ->
    erldeploy_guard:request(erldeploy_fmt:to_list(Vsn), abort).

%% ---------------------------------------------------------------- events

%% Live events to the controller. Never auto-connect (a dead controller must
%% not stall the node) and never block on a busy link: these are best effort,
%% the Report and last_outcome are the record.
-spec notify(pid() | undefined, term()) -> ok.
notify(Controller, Event) when is_pid(Controller) ->
    _ = erlang:send(Controller, {erldeploy_event, node(), Event}, [noconnect, nosuspend]),
    ok;
notify(_, _) ->
    ok.

%% The same for the few events that must get through if the link is alive
%% (an install failure right before the node restarts): may wait on a busy link.
-spec notify_sync(pid() | undefined, term()) -> ok.
notify_sync(Controller, Event) when is_pid(Controller) ->
    _ = erlang:send(Controller, {erldeploy_event, node(), Event}, [noconnect]),
    ok;
notify_sync(_, _) ->
    ok.

-spec last_outcome() -> map() | undefined.
last_outcome() ->
    persistent_term:get(?OUTCOME_KEY, undefined).

set_last_outcome(Outcome) ->
    persistent_term:put(?OUTCOME_KEY, Outcome).

%% ---------------------------------------------------------------- unloading

%% Remove the agent after DelayMs, when the process asking for it is gone.
%% The work is done by a timer process that runs only stock code (erl_eval,
%% lists, code): it holds no reference to agent code, so purging cannot kill it.
%% It takes the deploy lock (erldeploy_lock, see pyrlang_deploy/release/lock.py)
%% for the purge and skips it when a run holds the lock: that run has loaded
%% the agent for itself, and removes it when done.
-spec schedule_unload(non_neg_integer()) -> ok.
schedule_unload(DelayMs) ->
    Mods = modules(),
    Steps = lists:append([[{fun code:purge/1, M}, {fun code:delete/1, M}, {fun code:purge/1, M}]
                          || M <- Mods]),
    Funs = [F || {F, _} <- Steps],
    Args = [[M] || {_, M} <- Steps],
    Info = #{user => <<"erldeploy">>, host => list_to_binary(net_adm:localhost()), os_pid => 0,
             since => list_to_binary(calendar:system_time_to_rfc3339(erlang:system_time(second))),
             doing => <<"agent unload after an orphaned guard">>,
             controller => atom_to_binary(node(), utf8), transient => true},
    Src = "case catch register(erldeploy_lock, self()) of "
          "  true -> put('$erldeploy_lock', Info), lists:zipwith(fun erlang:apply/2, Funs, Args), unloaded; "
          "  _ -> skipped "
          "end.",
    {ok, Toks, _} = erl_scan:string(Src),
    {ok, Exprs} = erl_parse:parse_exprs(Toks),
    Bs = lists:foldl(fun({K, V}, B) -> erl_eval:add_binding(K, V, B) end, erl_eval:new_bindings(),
                     [{'Funs', Funs}, {'Args', Args}, {'Info', Info}]),
    {ok, _} = timer:apply_after(DelayMs, erl_eval, exprs, [Exprs, Bs]),
    ok.
