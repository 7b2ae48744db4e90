%% Short, single-line text for terms that travel back to the controller.
%%
%% Reports cross the distribution link and end up in a terminal, so every
%% reason is flattened to a bounded UTF-8 binary here, on the node, where the
%% records and pids still mean something.
-module(erldeploy_fmt).

-export([term/1, term/2, root_cause/1, hex/1, unhex/1, to_list/1]).

-define(DEPTH, 25).
-define(CHARS, 1500).

%% One line, depth- and size-limited.
-spec term(term()) -> binary().
term(T) ->
    term(T, ?CHARS).

-spec term(term(), pos_integer()) -> binary().
term(T, Chars) ->
    S = io_lib:format("~0tP", [T, ?DEPTH], [{chars_limit, Chars}]),
    unicode:characters_to_binary(S).

%% The innermost reason of the usual error wrappers: release_handler and sys
%% wrap a code_change crash in several layers of {'EXIT', _}, {error, _},
%% {badmatch, _} and {Reason, Stacktrace}; the user wants the core.
-spec root_cause(term()) -> term().
root_cause({code_change_failed, _Pid, Mod, _Vsn, R}) -> {code_change_failed, Mod, root_cause(R)};
root_cause({'EXIT', R}) -> root_cause(R);
root_cause({error, R}) -> root_cause(R);
root_cause({badmatch, R}) -> root_cause(R);
root_cause({R, Stack}) when is_list(Stack), Stack =/= [] ->
    case is_stacktrace(Stack) of
        true -> root_cause(R);
        false -> {R, Stack}
    end;
root_cause(R) -> R.

is_stacktrace(L) ->
    lists:all(fun({M, F, A, Loc}) when is_atom(M), is_atom(F), is_list(Loc) ->
                      is_integer(A) orelse is_list(A);
                 (_) -> false
              end, L).

-spec hex(binary()) -> binary().
hex(Bin) ->
    << <<(hex_digit(N))>> || <<N:4>> <= Bin >>.

hex_digit(N) when N < 10 -> $0 + N;
hex_digit(N) -> $a + N - 10.

-spec unhex(binary()) -> {ok, binary()} | error.
unhex(Hex) when byte_size(Hex) rem 2 =:= 0 ->
    try {ok, << <<(list_to_integer([H, L], 16))>> || <<H, L>> <= Hex >>}
    catch error:badarg -> error
    end;
unhex(_) ->
    error.

%% Paths and names may arrive as charlists or binaries from the controller.
-spec to_list(string() | binary() | atom()) -> string().
to_list(B) when is_binary(B) -> unicode:characters_to_list(B);
to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> L.
