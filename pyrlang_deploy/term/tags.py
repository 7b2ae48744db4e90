"""The External Term Format tag bytes, named (erts/doc: erl_ext_dist, "External Term Format").

The codec's hot loops compare against the literal numbers, with the name in a
comment beside each (a module-global lookup per element costs ~10% of decode
time). tests/test_term_tags.py checks that every literal there is one of these
values and that the name in its comment is the right one, so this table and the
loops cannot drift apart.
"""

from __future__ import annotations

VERSION = 131  # the byte before every encoded term

NEW_FLOAT = 70
BIT_BINARY = 77
COMPRESSED = 80  # zlib; only at the top of a term
ATOM_CACHE_REF = 82  # needs DFLAG_DIST_HDR_ATOM_CACHE, which we never set
NEW_PID = 88
NEW_PORT = 89
NEWER_REFERENCE = 90
SMALL_INTEGER = 97
INTEGER = 98
FLOAT = 99  # the old 31-byte text float
ATOM = 100
REFERENCE = 101
PORT = 102
PID = 103
SMALL_TUPLE = 104
LARGE_TUPLE = 105
NIL = 106
STRING = 107
LIST = 108
BINARY = 109
SMALL_BIG = 110
LARGE_BIG = 111
NEW_FUN = 112
EXPORT = 113
NEW_REFERENCE = 114
SMALL_ATOM = 115
MAP = 116
FUN = 117  # the pre-R8 fun; OTP 23 removed it, we refuse it
ATOM_UTF8 = 118
SMALL_ATOM_UTF8 = 119
V4_PORT = 120
LOCAL = 121  # needs DFLAG_LOCAL_EXT, which we never set

NAMES: dict[int, str] = {
    v: k for k, v in sorted(globals().items()) if k.isupper() and isinstance(v, int) and k != "VERSION"
}

# Tags the decoder refuses on purpose (each with its own error message).
REFUSED = frozenset({ATOM_CACHE_REF, FUN, LOCAL})
