"""Distribution capability flags (values from OTP's ``lib/kernel/include/dist.hrl``).

The values are taken from the header, not from documentation pages: several
published tables disagree with it (``MANDATORY_25_DIGEST`` is ``0x4000000``).
"""

from __future__ import annotations


class DFlag:
    """The flag bits as plain ints: an IntFlag of these 31 members costs more to create
    than a one-node CLI command spends on its whole handshake. :func:`describe` names them."""

    PUBLISHED = 0x01
    ATOM_CACHE = 0x02
    EXTENDED_REFERENCES = 0x04
    DIST_MONITOR = 0x08
    FUN_TAGS = 0x10
    DIST_MONITOR_NAME = 0x20
    HIDDEN_ATOM_CACHE = 0x40
    NEW_FUN_TAGS = 0x80
    EXTENDED_PIDS_PORTS = 0x100
    EXPORT_PTR_TAG = 0x200
    BIT_BINARIES = 0x400
    NEW_FLOATS = 0x800
    UNICODE_IO = 0x1000
    DIST_HDR_ATOM_CACHE = 0x2000
    SMALL_ATOM_TAGS = 0x4000
    UTF8_ATOMS = 0x10000
    MAP_TAG = 0x20000
    BIG_CREATION = 0x40000
    SEND_SENDER = 0x80000
    BIG_SEQTRACE_LABELS = 0x100000
    EXIT_PAYLOAD = 0x400000
    FRAGMENTS = 0x800000
    HANDSHAKE_23 = 0x1000000
    UNLINK_ID = 0x2000000
    MANDATORY_25_DIGEST = 0x4000000
    # the high word only travels in the version 6 ('N') handshake
    SPAWN = 0x1 << 32
    NAME_ME = 0x2 << 32
    V4_NC = 0x4 << 32
    ALIAS = 0x8 << 32
    LOCAL_EXT = 0x10 << 32  # OTP 26+: emulator-internal (term_to_binary), never offered on the wire
    # OTP 28 (dist.hrl, dist.h): ALTACT_SIG_SEND (op 37) carries alias, priority and
    # name sends and exit/2 signals to aliases. "Hopeful": a peer without it gets
    # the old ops (ALIAS_SEND, SEND_SENDER, REG_SEND, EXIT2), so offering it is a promise
    # to parse op 37 - which control.AltactSigSend does.
    ALTACT_SIG = 0x20 << 32


# What OTP 25 refuses to connect without (MANDATORY_DFLAGS_25 in dist.hrl).
MANDATORY_25 = (
    DFlag.EXTENDED_REFERENCES
    | DFlag.FUN_TAGS
    | DFlag.EXTENDED_PIDS_PORTS
    | DFlag.NEW_FUN_TAGS
    | DFlag.EXPORT_PTR_TAG
    | DFlag.BIT_BINARIES
    | DFlag.NEW_FLOATS
    | DFlag.UTF8_ATOMS
    | DFlag.MAP_TAG
    | DFlag.BIG_CREATION
    | DFlag.HANDSHAKE_23
)

# What OTP 26 adds to the mandatory set.
MANDATORY_26 = DFlag.V4_NC | DFlag.UNLINK_ID

# Our hidden client: every mandatory flag sent individually (so OTP 25..28 all accept
# us whichever set they check) plus the digest bit. Deliberately absent:
#   PUBLISHED            - we are hidden: never listed in the peers' nodes()
#   FRAGMENTS            - we neither send nor reassemble 131,69/70 fragments
#   DIST_HDR_ATOM_CACHE  - plain 'p' framing, no atom cache headers
#   SPAWN, NAME_ME       - we do not serve spawn requests nor ask for a name
# Every flag below is a promise about what we can receive (the protocol's rule; a
# peer may send any op its flags allow, whatever one OTP version happens to do):
# DIST_MONITOR(_NAME) MONITOR_P/DEMONITOR_P/MONITOR_P_EXIT, SEND_SENDER op 22/23,
# EXIT_PAYLOAD ops 24-28, UNLINK_ID ops 35/36, ALIAS op 33/34, ALTACT_SIG op 37.
CLIENT_FLAGS = (
    MANDATORY_25
    | MANDATORY_26
    | DFlag.MANDATORY_25_DIGEST
    | DFlag.DIST_MONITOR
    | DFlag.DIST_MONITOR_NAME
    | DFlag.SMALL_ATOM_TAGS
    | DFlag.UNICODE_IO
    | DFlag.SEND_SENDER
    | DFlag.BIG_SEQTRACE_LABELS
    | DFlag.EXIT_PAYLOAD
    | DFlag.ALIAS
    | DFlag.ALTACT_SIG
)

# What the peer must offer for us to talk to it: our codec and control layer
# assume the OTP 25 baseline (new pids/refs, utf8 atoms, maps, v6 handshake).
REQUIRED_PEER_FLAGS = MANDATORY_25 | DFlag.DIST_MONITOR


def missing_flags(peer_flags: int, required: int = REQUIRED_PEER_FLAGS) -> int:
    """The required flags the peer did not offer (0 if none)."""
    return required & ~peer_flags


def describe(flags: int) -> str:
    """``"EXTENDED_REFERENCES|FUN_TAGS|..."`` for logs and error messages."""
    names = [name for bit, name in _BITS if bit & flags]
    unknown = flags & ~_ALL_KNOWN
    if unknown:
        names.append(hex(unknown))
    return "|".join(names) or "0"


_BITS = [(bit, name) for name, bit in vars(DFlag).items() if name.isupper()]
_ALL_KNOWN = 0
for _bit, _ in _BITS:
    _ALL_KNOWN |= _bit
