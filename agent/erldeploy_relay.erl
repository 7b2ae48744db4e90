%% Node-side halves of "send each node only what it lacks, once".
%%
%% inventory/1: which lib/APP-VSN and erts-VSN dirs of a release this node has,
%% each with a content digest the controller computes the same way from the
%% tarball over its sorted regular files (RelPath, 0, H(Content), 0): SHA-1 through
%% crypto where crypto is loaded already, else CRC-32 per file combined with MD5
%% (names and sizes are compared first; erlang:md5/1 on megabytes is ~100x slower
%% than erlang:crc32/1, and loading crypto costs a node 0.2 s).
%% Sizes are compared first, so a dir that differs costs no hashing.
%%
%% copy/4: relay a file this node already holds (verified when it arrived) to
%% another node over this node's own distribution connection, into that node's
%% erldeploy_upload (which checks size and digest before its atomic rename).
%% The controller runs one copy per edge of its tree and picks a new source
%% when one fails.
-module(erldeploy_relay).

-export([inventory/1, copy/4, dir_digest/2]).

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
    Algo = algo(),
    #{host => list_to_binary(Host), algo => Algo, crypto => Algo =:= sha,
      releases_dir => list_to_binary(erldeploy_agent:releases_dir()),
      root => list_to_binary(Root),
      dirs => [{D, dir_state(Algo, filename:join(Root, erldeploy_fmt:to_list(D)), Files)} || {D, Files} <- Dirs]}.

algo() ->
    case code:is_loaded(crypto) of
        {file, _} -> try _ = crypto:hash(sha, <<>>), sha catch _:_ -> crc32 end;
        false -> crc32
    end.

dir_state(Algo, Dir, Want) ->
    case file:read_link_info(Dir, [raw]) of
        {ok, Info} when element(3, Info) =:= directory ->
            Have = files(Dir),
            Sizes = [{R, S} || {R, _, S, _} <- Have],
            case lists:sort([{iolist_to_binary(R), S} || {R, S} <- Want]) of
                Sizes -> cached_digest(Algo, Dir, Have);
                _ -> differs
            end;
        _ ->
            missing
    end.

-spec dir_digest(sha | crc32, string()) -> binary().
dir_digest(Algo, Dir) ->
    digest(Algo, files(Dir)).

%% A dir's digest is kept (persistent_term, it outlives the agent) while none of its
%% files changed name, size, mtime or inode: the next deploy only stats them.
cached_digest(Algo, Dir, Have) ->
    Key = {?MODULE, digest, Algo, Dir},
    Stamp = erlang:phash2([{R, S, M} || {R, _, S, M} <- Have]),
    case persistent_term:get(Key, none) of
        {Stamp, D} -> D;
        _ ->
            D = digest(Algo, Have),
            persistent_term:put(Key, {Stamp, D}),
            D
    end.

%% [{RelPath, AbsPath, Size, {Mtime, Inode}}] of the regular files under Dir, sorted by
%% RelPath; raw file operations (filelib:fold_files goes through the file server: 40x slower).
files(Dir) ->
    lists:keysort(1, walk(Dir, <<>>, [])).

walk(Dir, Rel, Acc) ->
    case file:list_dir_all(Dir) of
        {ok, Names} -> lists:foldl(fun(N, A) -> entry(Dir, Rel, N, A) end, Acc, Names);
        {error, _} -> Acc
    end.

entry(Dir, Rel, Name, Acc) ->
    Path = filename:join(Dir, Name),
    R = case Rel of <<>> -> name_bin(Name); _ -> <<Rel/binary, "/", (name_bin(Name))/binary>> end,
    case file:read_link_info(Path, [raw, {time, posix}]) of
        {ok, I} when element(3, I) =:= directory -> walk(Path, R, Acc);
        {ok, I} when element(3, I) =:= regular -> [{R, Path, element(2, I), {element(6, I), element(12, I)}} | Acc];
        _ -> Acc
    end.

name_bin(N) when is_binary(N) -> N;
name_bin(N) -> unicode:characters_to_binary(N).

digest(Algo, Files) ->
    List = [[R, 0, file_hash(Algo, F), 0] || {R, F, _, _} <- Files],
    case Algo of
        sha -> crypto:hash(sha, List);
        crc32 -> erlang:md5(List)
    end.

%% prim_file: no round trip through the file server per file
file_hash(Algo, F) ->
    case prim_file:read_file(F) of
        {ok, B} when Algo =:= sha -> crypto:hash(sha, B);
        {ok, B} -> <<(erlang:crc32(B)):32>>;
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
