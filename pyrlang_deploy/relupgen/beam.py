"""A pure reader of compiled BEAM files: what the appup generator needs to know about a module.

    info = read_beam(data)        # bytes of a .beam (plain or gzip-compressed)
    info.module, info.exports, info.imports, info.behaviours, info.digest, info.records

The container is IFF: "FOR1" <size> "BEAM", then chunks of <id:4><size:4><data> padded to
4 bytes. Atoms are in "AtU8" (or "Atom" before OTP 20); indexes in the other chunks are
1-based into that table. "ExpT"/"ImpT" are counted triples of 32-bit words. "Attr" and
"Dbgi" hold term_to_binary data, read with our own ETF decoder.

`digest` covers only what defines the code: the chunks beam_lib:md5/1 hashes, plus the
attributes. Debug info (Dbgi/Abst), docs, compile info (it holds the build's defines and
paths) and the line table are left out, so Elixir's always-differing debug info, or a
comment that moves code down a line, is not a change.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# beam_lib:md5/1's chunks (the code as loaded), plus Attr: -vsn and -behaviour live there.
DIGEST_CHUNKS = ("AtU8", "Atom", "Code", "StrT", "ImpT", "ExpT", "FunT", "LitT", "Meta", "Attr")


class BeamError(ValueError):
    """Bytes that are not a readable BEAM file."""


MFA = tuple[str, str, int]


@dataclass
class BeamInfo:
    module: str
    exports: set[tuple[str, int]]
    imports: set[MFA]
    digest: str                             # hex md5 of DIGEST_CHUNKS
    chunks: set[str] = field(default_factory=set, repr=False)
    attr_chunk: bytes = field(default=b"", repr=False)
    debug_chunks: dict[str, bytes] = field(default_factory=dict, repr=False)   # Dbgi / Abst

    # Decoded on first use: only the modules that changed are asked.
    @cached_property
    def attributes(self) -> dict[str, list[Any]]:
        """name -> values (repeated attributes concatenated)."""
        return attributes_of(self.attr_chunk) if self.attr_chunk else {}

    # From the debug info, when present (Erlang's abstract code), decoded on first use (only
    # changed processes need it): record name -> field names, and whether code_change
    # returns its state argument untouched in every clause.
    @cached_property
    def _forms(self) -> list[Any] | None:
        return _abstract_forms(self.debug_chunks)

    @cached_property
    def records(self) -> dict[str, tuple[str, ...]] | None:
        return None if self._forms is None else records_of(self._forms)

    @cached_property
    def code_change_passes_state(self) -> bool | None:
        return None if self._forms is None else code_change_passes_state(self._forms)

    @property
    def behaviours(self) -> set[str]:
        return {str(b) for key in ("behaviour", "behavior") for b in self.attributes.get(key, [])}

    @property
    def called_modules(self) -> set[str]:
        return {m for m, _, _ in self.imports}

    def implements_code_change(self) -> bool:
        """gen_server/gen_event (code_change/3), gen_statem (code_change/4), or a special
        process (system_code_change/4): release_handler suspends it and calls that."""
        return bool(self.exports & {("code_change", 3), ("code_change", 4), ("system_code_change", 4)})

    def is_supervisor(self) -> bool:
        return "supervisor" in self.behaviours or "supervisor_bridge" in self.behaviours


def chunks_of(data: bytes) -> dict[str, bytes]:
    """The IFF chunks of a BEAM file, by id."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise BeamError(f"compressed beam does not inflate: {e}") from None
    if len(data) < 12 or data[:4] != b"FOR1" or data[8:12] != b"BEAM":
        raise BeamError("not a BEAM file (no FOR1/BEAM header)")
    (size,) = struct.unpack_from(">I", data, 4)
    end = min(len(data), 8 + size)
    pos, out = 12, {}
    while pos + 8 <= end:
        cid = data[pos:pos + 4].decode("latin-1")
        (n,) = struct.unpack_from(">I", data, pos + 4)
        if pos + 8 + n > end:
            raise BeamError(f"chunk {cid} runs past the end of the file")
        out[cid] = data[pos + 8:pos + 8 + n]
        pos += 8 + ((n + 3) & ~3)
    return out


def _compact_len(data: bytes, pos: int) -> tuple[int, int]:
    """A length in the compact term encoding (OTP 28's AtU8 with a negative count)."""
    b = data[pos]
    if b & 0x08 == 0:
        return b >> 4, pos + 1
    if b & 0x10 == 0:
        return ((b & 0xE0) << 3) | data[pos + 1], pos + 2
    n = (b >> 5) + 2
    return int.from_bytes(data[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def read_atoms(chunk: bytes, utf8: bool = True) -> list[str]:
    (count,) = struct.unpack_from(">i", chunk, 0)
    compact, count = count < 0, abs(count)
    pos, atoms = 4, []
    for _ in range(count):
        if compact:
            n, pos = _compact_len(chunk, pos)
        else:
            n, pos = chunk[pos], pos + 1
        atoms.append(chunk[pos:pos + n].decode("utf-8" if utf8 else "latin-1"))
        pos += n
    return atoms


def _triples(chunk: bytes) -> list[tuple[int, int, int]]:
    (count,) = struct.unpack_from(">I", chunk, 0)
    return [struct.unpack_from(">III", chunk, 4 + 12 * i) for i in range(count)]


def _decode_etf(chunk: bytes) -> Any:
    from ..term import decode

    return decode(chunk)[0]


def digest_of(chunks: dict[str, bytes]) -> str:
    h = hashlib.md5()
    for cid in DIGEST_CHUNKS:
        if cid in chunks:
            h.update(cid.encode() + struct.pack(">I", len(chunks[cid])) + chunks[cid])
    return h.hexdigest()


def read_beam(data: bytes) -> BeamInfo:
    chunks = chunks_of(data)
    if "AtU8" in chunks:
        atoms = read_atoms(chunks["AtU8"], utf8=True)
    elif "Atom" in chunks:
        atoms = read_atoms(chunks["Atom"], utf8=False)
    else:
        raise BeamError("BEAM file without an atom table")

    def atom(i: int) -> str:
        if not 1 <= i <= len(atoms):
            raise BeamError(f"atom index {i} out of range")
        return atoms[i - 1]

    exports = {(atom(f), a) for f, a, _ in _triples(chunks["ExpT"])} if "ExpT" in chunks else set()
    imports = {(atom(m), atom(f), a) for m, f, a in _triples(chunks["ImpT"])} if "ImpT" in chunks else set()
    return BeamInfo(module=atoms[0], exports=exports, imports=imports, digest=digest_of(chunks),
                    chunks=set(chunks), attr_chunk=chunks.get("Attr", b""),
                    debug_chunks={k: chunks[k] for k in ("Dbgi", "Abst") if k in chunks})


def attributes_of(chunk: bytes) -> dict[str, list[Any]]:
    try:
        attrs = _decode_etf(chunk)
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise BeamError(f"unreadable Attr chunk: {e}") from None
    out: dict[str, list[Any]] = {}
    for item in attrs if isinstance(attrs, list) else []:
        if isinstance(item, tuple) and len(item) == 2:
            vals = item[1] if isinstance(item[1], list) else [item[1]]
            out.setdefault(str(item[0]), []).extend(vals)
    return out


# --- debug info: Erlang abstract code ------------------------------------------------

def _abstract_forms(chunks: dict[str, bytes]) -> list[Any] | None:
    """The abstract forms when the debug info is Erlang's own ({debug_info_v1,
    erl_abstract_code, {Forms, Opts}}); None for Elixir's backend, no or encrypted debug info."""
    try:
        if "Dbgi" in chunks:
            t = _decode_etf(chunks["Dbgi"])
            if (isinstance(t, tuple) and len(t) == 3 and t[0] == "debug_info_v1"
                    and t[1] == "erl_abstract_code" and isinstance(t[2], tuple)
                    and isinstance(t[2][0], list)):
                return t[2][0]
        elif chunks.get("Abst"):
            t = _decode_etf(chunks["Abst"])
            if isinstance(t, tuple) and t[0] == "raw_abstract_v1":
                return t[1]
    except Exception:  # noqa: BLE001 - unreadable debug info only means "no records known"
        return None
    return None


def _field_name(f: Any) -> str | None:
    # {record_field, A, {atom, A, Name}[, Default]} | {typed_record_field, RecordField, Type}
    if isinstance(f, tuple) and f and f[0] == "typed_record_field":
        f = f[1]
    if isinstance(f, tuple) and len(f) >= 3 and f[0] == "record_field" and isinstance(f[2], tuple):
        return str(f[2][2])
    return None


def records_of(forms: list[Any]) -> dict[str, tuple[str, ...]]:
    out = {}
    for f in forms:
        if isinstance(f, tuple) and len(f) == 4 and f[0] == "attribute" and f[2] == "record":
            name, fields = f[3]
            out[str(name)] = tuple(n for n in map(_field_name, fields) if n is not None)
    return out


def code_change_passes_state(forms: list[Any]) -> bool | None:
    """True when every clause of code_change/3 (gen_server) or /4 (gen_statem) only
    returns its state argument as it came ({ok, State} / {ok, StateName, Data}): it converts
    nothing. False when some clause does more. None when there is no code_change."""
    for f in forms:
        if isinstance(f, tuple) and len(f) == 5 and f[0] == "function" and f[2] == "code_change" \
                and f[3] in (3, 4):
            arity, clauses = f[3], f[4]
            return all(_passes_state(c, arity) for c in clauses)
    return None


def _var(t: Any) -> str | None:
    return str(t[2]) if isinstance(t, tuple) and len(t) == 3 and t[0] == "var" else None


def _passes_state(clause: Any, arity: int) -> bool:
    if not (isinstance(clause, tuple) and len(clause) == 5 and clause[0] == "clause"):
        return False
    _, _, patterns, _, body = clause
    last = body[-1] if body else None
    if not (isinstance(last, tuple) and len(last) == 3 and last[0] == "tuple"):
        return False
    items = last[2]
    if not items or items[0][:1] != ("atom",) or items[0][2] != "ok":
        return False
    if arity == 3:      # code_change(OldVsn, State, Extra) -> {ok, State}
        state = _var(patterns[1])
        return len(items) == 2 and state is not None and _var(items[1]) == state
    # gen_statem: code_change(OldVsn, StateName, Data, Extra) -> {ok, StateName, Data}
    name, data = _var(patterns[1]), _var(patterns[2])
    return (len(items) == 3 and data is not None and _var(items[2]) == data
            and (name is None or _var(items[1]) == name))
