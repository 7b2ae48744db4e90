%% Receiving a release tarball in chunks into the releases directory.
%%
%% One process per upload. The controller sends {erldeploy_chunk, Seq, Bin}
%% straight to it (no rpc per chunk), the process writes and hashes each chunk
%% and acks it, so the controller can keep a window of chunks in flight.
%% Nothing appears under the final name until the size and digest match:
%% data goes to Name.part, is synced, then renamed atomically.
-module(erldeploy_upload).

-export([open/5, finish/1, active/0, file_digest/2]).
-export([init/3]).

-define(IDLE_MS, 120000).       % a silent controller must not leave a process behind
-define(READ_CHUNK, 1048576).
-define(NAME_PREFIX, "erldeploy_upload:").

%% ---------------------------------------------------------------- API

-spec open(string() | binary(), non_neg_integer(), sha256 | md5, binary() | string(), pid()) ->
          {ok, pid()} | {already_present, string()} | {error, term()}.
open(Name0, Size, Algo, Digest0, Owner) ->
    Name = erldeploy_fmt:to_list(Name0),
    try
        ok = check_name(Name),
        is_integer(Size) andalso Size >= 0 orelse throw({bad_size, Size}),
        is_pid(Owner) orelse throw({bad_owner, Owner}),
        _ = hash_init(Algo),
        Digest = normalize_digest(Algo, Digest0),
        Dir = erldeploy_agent:releases_dir(),
        Path = filename:join(Dir, Name),
        case file_digest(Path, Algo) of
            {ok, Digest} ->
                {already_present, Path};
            _ ->
                start(#{name => Name, path => Path, size => Size, algo => Algo,
                        digest => Digest, owner => Owner})
        end
    catch
        throw:Reason -> {error, Reason}
    end.

%% Called (via rpc) after every chunk was acked.
-spec finish(pid()) -> {ok, string()} | {error, term()}.
finish(Pid) when is_pid(Pid) ->
    Ref = erlang:monitor(process, Pid),
    Pid ! {erldeploy_finish, self(), Ref},
    receive
        {Ref, Reply} ->
            erlang:demonitor(Ref, [flush]),
            Reply;
        {'DOWN', Ref, process, Pid, Reason} ->
            {error, {upload_gone, Reason}}
    end.

%% Uploads in progress on this node, for status().
-spec active() -> [map()].
active() ->
    lists:flatmap(fun(RegName) ->
                          case lists:prefix(?NAME_PREFIX, atom_to_list(RegName)) of
                              true -> progress_of(RegName);
                              false -> []
                          end
                  end, registered()).

progress_of(RegName) ->
    case whereis(RegName) of
        undefined -> [];
        Pid ->
            case erlang:process_info(Pid, dictionary) of
                {dictionary, D} ->
                    case lists:keyfind('$erldeploy_upload', 1, D) of
                        {_, Info} -> [Info#{pid => Pid}];
                        false -> []
                    end;
                undefined -> []
            end
    end.

%% The digest of a file on disk, or an error when it cannot be read.
-spec file_digest(string(), sha256 | md5) -> {ok, binary()} | {error, term()}.
file_digest(Path, Algo) ->
    case file:open(Path, [read, raw, binary]) of
        {ok, Fd} ->
            try hash_file(Fd, hash_init(Algo))
            after file:close(Fd)
            end;
        {error, _} = E ->
            E
    end.

hash_file(Fd, H) ->
    case file:read(Fd, ?READ_CHUNK) of
        {ok, Bin} -> hash_file(Fd, hash_update(H, Bin));
        eof -> {ok, hash_final(H)};
        {error, _} = E -> E
    end.

%% ---------------------------------------------------------------- validation

check_name(Name) ->
    Base = filename:basename(Name),
    Ok = Name =/= "" andalso Base =:= Name andalso Name =/= "." andalso Name =/= ".."
        andalso filename:extension(Name) =/= ".part" andalso io_lib:printable_unicode_list(Name),
    case Ok of
        true -> ok;
        false -> throw({bad_name, Name})
    end.

%% The controller may send the digest raw or as hex (binary or charlist).
normalize_digest(Algo, D) when is_list(D) ->
    normalize_digest(Algo, list_to_binary(D));
normalize_digest(Algo, D) when is_binary(D) ->
    Len = digest_size(Algo),
    case byte_size(D) of
        Len -> D;
        L when L =:= 2 * Len ->
            case erldeploy_fmt:unhex(string:lowercase(D)) of
                {ok, Raw} -> Raw;
                error -> throw({bad_digest, D})
            end;
        _ -> throw({bad_digest, D})
    end;
normalize_digest(_Algo, D) ->
    throw({bad_digest, D}).

digest_size(sha256) -> 32;
digest_size(md5) -> 16.

%% ---------------------------------------------------------------- hashing
%% sha256 needs crypto, which a minimal release may lack; MD5 is a BIF.

hash_init(sha256) ->
    try {sha256, crypto:hash_init(sha256)}
    catch _:_ -> throw({unsupported_algo, sha256})
    end;
hash_init(md5) ->
    {md5, erlang:md5_init()};
hash_init(Other) ->
    throw({unsupported_algo, Other}).

hash_update({sha256, C}, Bin) -> {sha256, crypto:hash_update(C, Bin)};
hash_update({md5, C}, Bin) -> {md5, erlang:md5_update(C, Bin)}.

hash_final({sha256, C}) -> crypto:hash_final(C);
hash_final({md5, C}) -> erlang:md5_final(C).

%% ---------------------------------------------------------------- the process

start(Args) ->
    Ref = make_ref(),
    %% Not linked: the rpc worker that opened the upload ends right away.
    Pid = spawn(?MODULE, init, [self(), Ref, Args]),
    Mon = erlang:monitor(process, Pid),
    receive
        {Ref, Reply} ->
            erlang:demonitor(Mon, [flush]),
            Reply;
        {'DOWN', Mon, process, Pid, Reason} ->
            {error, {upload_start_failed, Reason}}
    end.

init(Opener, Ref, #{name := Name, path := Path, owner := Owner} = Args) ->
    %% One upload per file name at a time: the registered name is the lock,
    %% and it makes the upload visible to an operator (i(), observer).
    RegName = list_to_atom(?NAME_PREFIX ++ Name),
    case catch register(RegName, self()) of
        true ->
            set_group_leader(),
            Part = Path ++ ".part",
            case open_part(Part) of
                {ok, Fd} ->
                    OwnerMon = erlang:monitor(process, Owner),
                    S = Args#{fd => Fd, part => Part, next => 0, bytes => 0,
                              hash => hash_init(maps:get(algo, Args)), owner_mon => OwnerMon},
                    publish(S),
                    Opener ! {Ref, {ok, self()}},
                    loop(S);
                {error, Reason} ->
                    Opener ! {Ref, {error, {cannot_open, Part, Reason}}}
            end;
        _ ->
            Opener ! {Ref, {error, {busy, Name}}}
    end.

open_part(Part) ->
    case filelib:ensure_dir(Part) of
        ok -> file:open(Part, [write, raw, binary, {delayed_write, 1048576, 1000}]);
        {error, _} = E -> E
    end.

%% Our group leader would otherwise be the controller's, on another node.
set_group_leader() ->
    case whereis(user) of
        undefined -> ok;
        U -> group_leader(U, self())
    end.

loop(#{next := Next, owner := Owner, owner_mon := OwnerMon} = S) ->
    receive
        {erldeploy_chunk, Next, Bin} when is_binary(Bin) ->
            loop(write_chunk(Next, Bin, S));
        {erldeploy_chunk, Seq, _} when is_integer(Seq), Seq < Next ->
            %% A resent chunk we already have: ack again, write nothing.
            Owner ! {erldeploy_chunk_ack, self(), Seq},
            loop(S);
        {erldeploy_chunk, Seq, _} ->
            fail(S, Seq, {out_of_order, Next, Seq});
        {erldeploy_finish, From, Ref} ->
            From ! {Ref, complete(S)};
        {'DOWN', OwnerMon, process, _, _} ->
            %% The controller is gone: nobody will finish this upload.
            discard(S)
    after ?IDLE_MS ->
            discard(S)
    end.

write_chunk(Seq, Bin, #{fd := Fd, bytes := Bytes, size := Size, hash := H, owner := Owner} = S) ->
    NewBytes = Bytes + byte_size(Bin),
    if
        NewBytes > Size ->
            fail(S, Seq, {too_large, Size});
        true ->
            case file:write(Fd, Bin) of
                ok ->
                    S1 = S#{next := Seq + 1, bytes := NewBytes, hash := hash_update(H, Bin)},
                    publish(S1),
                    Owner ! {erldeploy_chunk_ack, self(), Seq},
                    S1;
                {error, Reason} ->
                    fail(S, Seq, {write_failed, Reason})
            end
    end.

%% A broken upload tells the controller at once and leaves nothing behind.
fail(#{owner := Owner} = S, Seq, Reason) ->
    Owner ! {erldeploy_chunk_error, self(), Seq, Reason},
    discard(S),
    exit(normal).

complete(#{fd := Fd, part := Part, path := Path, size := Size, bytes := Bytes,
           digest := Want, hash := H} = S) ->
    Got = hash_final(H),
    if
        Bytes =/= Size ->
            discard(S),
            {error, {size_mismatch, Size, Bytes}};
        Got =/= Want ->
            discard(S),
            {error, {checksum_mismatch, erldeploy_fmt:hex(Want), erldeploy_fmt:hex(Got)}};
        true ->
            %% close/2 reports a failed delayed write; sync first so the rename
            %% never exposes a file whose data is still in the page cache only.
            case {file:sync(Fd), file:close(Fd)} of
                {ok, ok} ->
                    case file:rename(Part, Path) of
                        ok -> {ok, Path};
                        {error, Reason} ->
                            _ = file:delete(Part),
                            {error, {rename_failed, Reason}}
                    end;
                {R1, R2} ->
                    _ = file:delete(Part),
                    {error, {sync_failed, first_error(R1, R2)}}
            end
    end.

first_error(ok, R) -> R;
first_error(R, _) -> R.

discard(#{fd := Fd, part := Part}) ->
    _ = file:close(Fd),
    _ = file:delete(Part),
    ok.

publish(#{name := Name, bytes := Bytes, size := Size, owner := Owner}) ->
    put('$erldeploy_upload', #{name => unicode:characters_to_binary(Name), bytes => Bytes, size => Size,
                               owner => Owner}).
