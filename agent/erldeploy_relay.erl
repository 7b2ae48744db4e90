%% Node-side halves of "send each node only what it lacks, once".
%%
%% inventory/1: which lib/APP-VSN and erts-VSN dirs of a release this node has,
%% each with a content digest the controller computes the same way from the
%% tarball (md5 over the sorted regular files: RelPath, 0, md5(Content), 0).
%% Sizes are compared first, so a dir that differs costs no hashing.
%%
%% copy/4: relay a file this node already holds (verified when it arrived) to
%% another node over this node's own distribution connection, into that node's
%% erldeploy_upload (which checks size and digest before its atomic rename).
%% The controller runs one copy per edge of its tree and picks a new source
%% when one fails.
-module(erldeploy_relay).

-export([inventory/1, copy/4, dir_digest/1]).

-define(RPC_MS, 60000).
-define(ACK_MS, 120000).
-define(CHUNK, 1048576).
-define(WINDOW, 8).

%% ---------------------------------------------------------------- inventory

%% Dirs: [{RelDir, [{RelFile, Size}]}] as in the tarball, e.g. {"lib/demo-0.0.2", [...]}.
%% -> #{host, releases_dir, root, dirs => [{RelDir, missing | differs | Digest}]}
%% Relative to code:root_dir(), where release_handler unpacks.
-spec inventory([{string() | binary(), [{binary(), non_neg_integer()}]}]) -> map().
inventory(Dirs) ->
    Root = code:root_dir(),
    {ok, Host} = inet:gethostname(),
    #{host => list_to_binary(Host),
      releases_dir => list_to_binary(erldeploy_agent:releases_dir()),
      root => list_to_binary(Root),
      dirs => [{D, dir_state(filename:join(Root, erldeploy_fmt:to_list(D)), Files)} || {D, Files} <- Dirs]}.

dir_state(Dir, Want) ->
    case filelib:is_dir(Dir) of
        false -> missing;
        true ->
            Have = files(Dir),
            Sizes = lists:sort([{R, S} || {R, _, S} <- Have]),
            case lists:sort([{iolist_to_binary(R), S} || {R, S} <- Want]) of
                Sizes -> digest(Have);
                _ -> differs
            end
    end.

-spec dir_digest(string()) -> binary().
dir_digest(Dir) ->
    digest(files(Dir)).

%% [{RelPath, AbsPath, Size}] of the regular files under Dir, sorted by RelPath.
files(Dir) ->
    Prefix = length(filename:split(Dir)),
    Found = filelib:fold_files(Dir, "", true,
                               fun(F, Acc) ->
                                       Rel = filename:join(lists:nthtail(Prefix, filename:split(F))),
                                       [{unicode:characters_to_binary(Rel), F, filelib:file_size(F)} | Acc]
                               end, []),
    lists:keysort(1, Found).

digest(Files) ->
    erlang:md5([[R, 0, file_md5(F), 0] || {R, F, _} <- Files]).

file_md5(F) ->
    case file:read_file(F) of
        {ok, B} -> erlang:md5(B);
        {error, _} -> <<>>
    end.

%% ---------------------------------------------------------------- relay

%% Send releases_dir/Name (already here, verified) to Target's releases dir.
%% -> {ok, Bytes} | {already_present, Path} | {error, {target, Reason}} | {error, {source, Reason}}
-spec copy(string() | binary(), sha256 | md5, binary(), node()) ->
          {ok, non_neg_integer()} | {already_present, string()} | {error, term()}.
copy(Name0, Algo, Digest, Target) ->
    Name = erldeploy_fmt:to_list(Name0),
    Path = filename:join(erldeploy_agent:releases_dir(), Name),
    case file:open(Path, [read, raw, binary]) of
        {ok, Fd} ->
            try send(Fd, filelib:file_size(Path), Name, Algo, Digest, Target)
            after file:close(Fd)
            end;
        {error, R} ->
            {error, {source, {cannot_read, Path, R}}}
    end.

send(Fd, Size, Name, Algo, Digest, Target) ->
    case rpc:call(Target, erldeploy_upload, open, [Name, Size, Algo, Digest, self()], ?RPC_MS) of
        {ok, Pid} ->
            Mon = erlang:monitor(process, Pid),
            try stream(Fd, Pid, Mon, 0, 0, #{}) of
                ok ->
                    case rpc:call(Target, erldeploy_upload, finish, [Pid], ?ACK_MS) of
                        {ok, _} -> {ok, Size};
                        {badrpc, R} -> {error, {target, R}};
                        {error, R} -> {error, {target, R}}
                    end;
                {error, R} ->
                    {error, {target, R}}
            after
                erlang:demonitor(Mon, [flush])
            end;
        {already_present, P} ->
            {already_present, P};
        {badrpc, R} ->
            {error, {target, R}};
        {error, R} ->
            {error, {target, R}}
    end.

%% Keep up to ?WINDOW chunks unacknowledged, like the controller does.
stream(Fd, Pid, Mon, Seq, InFlight, Eof) when InFlight < ?WINDOW, Eof =:= #{} ->
    case file:read(Fd, ?CHUNK) of
        {ok, Bin} ->
            Pid ! {erldeploy_chunk, Seq, Bin},
            stream(Fd, Pid, Mon, Seq + 1, InFlight + 1, Eof);
        eof ->
            stream(Fd, Pid, Mon, Seq, InFlight, #{eof => true});
        {error, R} ->
            exit(Pid, kill),
            {error, {read_failed, R}}
    end;
stream(_Fd, _Pid, _Mon, _Seq, 0, _Eof) ->
    ok;
stream(Fd, Pid, Mon, Seq, InFlight, Eof) ->
    receive
        {erldeploy_chunk_ack, Pid, _} ->
            stream(Fd, Pid, Mon, Seq, InFlight - 1, Eof);
        {erldeploy_chunk_error, Pid, S, R} ->
            {error, {chunk, S, R}};
        {'DOWN', Mon, process, Pid, R} ->
            {error, {upload_gone, R}}
    after ?ACK_MS ->
            exit(Pid, kill),
            {error, stalled}
    end.
