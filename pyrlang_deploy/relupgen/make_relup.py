"""Run OTP's own systools:make_relup on the two releases: we never write relup instructions.

systools needs only the two .rel files and, per app, its .app and .appup (module tests are
off for relups), so the inputs are laid out in a small work dir:

    WORK/new/NAME.rel   WORK/new/ebin/APP.app, APP.appup   every app at its version in NEW
    WORK/old/NAME.rel   WORK/old/ebin/APP.app              OLD's apps at another version
    -> WORK/out/relup   (both directions: up from OLD, down to OLD)

Two ebin dirs and not one per lib: systools looks for each app's .app by opening APP.app
in every dir of its path in turn until the version matches, so a path of all the libs
costs apps x libs opens (over half of make_relup's time on 35 apps); here it is at most
two per app. The relup is the same: systools reads nothing but those files.

Where it runs, in this order (the result says which):
  1. the ERTS the NEW release carries (erts-VSN/ plus kernel, stdlib, sasl in its lib/):
     the very systools of the target
  2. `erl` on PATH
  3. a node of the target cluster, over our RPC (no Erlang where the command runs):
     the inputs are written to a temporary dir on the node and removed afterwards
The local emulator (local_erl.py) is started before the inputs are ready (it reads the
work dir from stdin), so its boot overlaps our reading of the tarballs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ReleaseError
from .local_erl import LocalErl, MakeRelupError, RelupResult, erl_env

if TYPE_CHECKING:
    from .releases import Release


@dataclass
class Inputs:
    """Every file systools reads, by path relative to the work dir."""
    name: str
    files: dict[str, bytes] = field(default_factory=dict)
    # systools' code path: NEW's apps are found in the first dir, OLD's others in the second
    path: tuple[str, ...] = ("new/ebin", "old/ebin")

    def write(self, root: Path) -> None:
        for d in {"out", *(rel.rpartition("/")[0] for rel in self.files)}:
            (root / d).mkdir(parents=True, exist_ok=True)
        for rel, data in self.files.items():
            (root / rel).write_bytes(data)


def collect_inputs(old: Release, new: Release, appups: dict[str, str]) -> Inputs:
    """appups: app -> the text of the APP.appup NEW will ship (generated or the user's)."""
    inp = Inputs(new.name)
    inp.files[f"old/{new.name}.rel"] = old.rel_bytes
    inp.files[f"new/{new.name}.rel"] = new.rel_bytes
    nv = new.app_versions
    for rel in (old, new):          # an app at one version in both: OLD's files (read first)
        for a in rel.apps:
            ebin = rel.ebin(a.name, a.vsn)
            side = "new" if nv.get(a.name) == a.vsn else "old"
            for fn in (f"{a.name}.app", f"{a.name}.appup"):
                if fn in ebin and f"{side}/ebin/{fn}" not in inp.files:
                    inp.files[f"{side}/ebin/{fn}"] = rel.read(ebin[fn])
    for app, text in appups.items():
        inp.files[f"new/ebin/{app}.appup"] = text.encode("utf-8")
    return inp


def carried_erts(new: Release, restart: bool) -> LocalErl | None:
    """erts-VSN/bin/erlexec with the release's kernel, stdlib and sasl and a start_clean
    boot file (relx and mix ship releases/VSN/start_clean.boot): extracted to a temp root."""
    if not new.has_erts():
        return None
    apps = new.app_versions
    boot = f"releases/{new.vsn}/start_clean.boot"
    if boot not in new.files or not all(a in apps for a in ("kernel", "stdlib", "sasl")):
        return None
    prefixes = (f"erts-{new.erts}/", *(f"lib/{a}-{apps[a]}/" for a in ("kernel", "stdlib", "sasl")))
    root = Path(tempfile.mkdtemp(prefix="erldeploy-erts-"))
    try:
        _extract(new, [n for n in new.files.names if n.startswith(prefixes)] + [boot], root)
        bindir = root / f"erts-{new.erts}" / "bin"
        erlexec = bindir / "erlexec"
        if not os.access(erlexec, os.X_OK):
            raise OSError("erlexec not executable")
        env = {**erl_env(), "ROOTDIR": str(root), "BINDIR": str(bindir), "EMU": "beam", "PROGNAME": "erl"}
        # mix's boot files name their libs $RELEASE_LIB/...; relx's use $ROOT
        argv = [str(erlexec), "-boot", str(root / boot)[:-len(".boot")], "-boot_var", "RELEASE_LIB",
                str(root / "lib")]
        return LocalErl(argv, env,
                        f"the ERTS {new.erts} that {new.origin.name} carries", restart, cleanup=root)
    except (OSError, ReleaseError):
        shutil.rmtree(root, ignore_errors=True)
        return None


def _extract(rel: Release, names: list[str], root: Path) -> None:
    """The named files of NEW under root, with their modes (erts needs its executable bits);
    a member whose path would leave root is refused."""
    files = rel.files
    base = root.resolve()
    for n in names:
        dst = (root / n).resolve()
        if not dst.is_relative_to(base):
            raise OSError(f"{n}: outside the release root")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not files.is_tar:
            shutil.copy2(files.origin / n, dst)
            continue
        e = files.resolve(n)                    # a link inside the tarball: its target
        dst.write_bytes(files.read_entry(e))
        os.chmod(dst, e.mode & 0o755 | 0o600)


# --- on a node of the target cluster ---------------------------------------------------

async def run_on_node(cluster: Any, node: str, inputs: Inputs, restart: bool) -> RelupResult:
    """Write the inputs to a temp dir on `node`, run make_relup there, read the relup back,
    remove the dir. Only stock modules are called (file, systools)."""
    from ..errors import RpcError
    from ..release.terms import text
    from ..term import Atom

    runner = f"on node {node}"
    tmp = text(await cluster.rpc(node, "os", "getenv", ["TMPDIR", "/tmp"]))
    uniq = await cluster.rpc(node, "erlang", "unique_integer", [[Atom("positive")]])
    work = f"{tmp.rstrip('/')}/erldeploy-relup-node-{uniq}"
    try:
        for rel, data in inputs.files.items():
            path = f"{work}/{rel}"
            await cluster.rpc(node, "filelib", "ensure_dir", [path])
            res = await cluster.rpc(node, "file", "write_file", [path, data])
            if res != "ok":
                raise MakeRelupError(f"{node}: cannot write {path}: {text(res)}", node=node)
        await cluster.rpc(node, "filelib", "ensure_dir", [f"{work}/out/relup"])
        opts = [Atom("silent"), (Atom("path"), [f"{work}/{d}" for d in inputs.path]),
                (Atom("outdir"), f"{work}/out")]
        if restart:
            opts.append(Atom("restart_emulator"))
        res = await cluster.rpc(node, "systools", "make_relup",
                                [f"{work}/new/{inputs.name}", [f"{work}/old/{inputs.name}"],
                                 [f"{work}/old/{inputs.name}"], opts], timeout=300)
        if isinstance(res, tuple) and res and res[0] == "error" and len(res) == 3:
            msg = text(await cluster.rpc(node, str(res[1]), "format_error", [res[2]]))
            raise MakeRelupError(f"systools:make_relup ({runner}): {' '.join(msg.split())}", node=node)
        if not (isinstance(res, tuple) and res[0] == "ok" and len(res) == 4):
            raise MakeRelupError(f"systools:make_relup ({runner}): {text(res)}", node=node)
        warnings = [" ".join(text(await cluster.rpc(node, str(res[2]), "format_warning", [w])).split())
                    for w in res[3]]
        data = await cluster.rpc(node, "file", "read_file", [f"{work}/out/relup"])
        if not (isinstance(data, tuple) and data[0] == "ok"):
            raise MakeRelupError(f"{node}: relup not written: {text(data)}", node=node)
        return RelupResult(bytes(data[1]).decode("utf-8"), warnings, runner)
    finally:
        try:
            await cluster.rpc(node, "file", "del_dir_r", [work])
        except RpcError:
            pass
