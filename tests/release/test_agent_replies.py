"""The agent's answers decoded from literal terms; the guard's phases against its source."""

from __future__ import annotations

import re
from pathlib import Path

from pyrlang_deploy.release.agent import phases, replies
from pyrlang_deploy.release.terms import current_and_permanent, text
from pyrlang_deploy.term.types import Atom, Pid

A = Atom
REPO = Path(__file__).resolve().parents[2]
PID = Pid(A("n@h"), 1, 0, 0)


def test_phases_match_erldeploy_guard_erl():
    src = (REPO / "agent" / "erldeploy_guard.erl").read_text()
    used = set(re.findall(r"\bphase\(([a-z]\w*),", src)) | set(re.findall(r"\bphase => ([a-z]\w*)", src))
    assert used == set(phases.PHASES)
    renewable = re.search(r"lists:member\(Phase, \[([\w, ]+)\]\)", src).group(1)
    assert {p.strip() for p in renewable.split(",")} == phases.RENEWABLE
    assert phases.FINISHED <= set(phases.PHASES)


def test_upload_open_and_finish():
    assert replies.upload_opened((A("ok"), PID)).pid == PID
    assert replies.upload_opened((A("already_present"), "/r/x.tar.gz")) == replies.Opened("already_present",
                                                                                           path="/r/x.tar.gz")
    assert replies.upload_opened((A("error"), A("eacces"))).reason == "eacces"
    assert replies.upload_finished((A("ok"), b"/r/x")).path == "/r/x"
    f = replies.upload_finished((A("error"), (A("checksum_mismatch"), b"aa", b"bb")))
    assert not f.ok and f.mismatch == ("aa", "bb")


def test_chunk_replies():
    match = replies.chunk_reply_of(PID)
    assert match((replies.CHUNK_ACK, PID, 3)) and not match((replies.CHUNK_ACK, Pid(A("o@h"), 2, 0, 0), 3))
    assert replies.chunk_reply((replies.CHUNK_ACK, PID, 3)) == (3, None)
    assert replies.chunk_reply((replies.CHUNK_ERROR, PID, 4, A("enospc"))) == (4, "enospc")


def test_guard_ok_and_error_replies():
    ok = replies.guard_result("n", "0.0.2", (A("ok"), {A("from"): "0.0.1", A("timings"): {A("install"): 12}}))
    assert ok.ok and ok.from_vsn == "0.0.1" and ok.timings_ms == {"install": 12}
    crash = {A("kind"): A("crash_report"), A("who"): A("demo_server"), A("reason"): "badarg", A("text"): "t"}
    err = replies.guard_result("n", "0.0.2", (A("error"), A("verify"), A("unhealthy"),
                                              {A("rollback"): (A("ok"), "0.0.2", "0.0.1"), A("crashes"): [crash]}))
    assert not err.ok and err.stage == "verify" and err.rolled_back_to == "0.0.1"
    assert str(err.crashes[0]) == "crash_report demo_server: badarg"
    assert "verify failed for 0.0.2: unhealthy; rolled back to 0.0.1" in err.describe()
    assert replies.guard_result("n", "0.0.2", A("what")) is None


def test_install_failed_event_before_a_restart():
    ev = replies.event((replies.EVENT, A("n@h"), (A("install_failed"), {A("reason"): "r", A("root_cause"): "rc",
                                                                        A("node_restarting"): True})))
    assert ev.kind == "install_failed"
    res = replies.install_failed("n@h", "0.0.2", ev.data)
    assert res.node_restarting and res.root_cause == "rc" and res.stage == "install"
    assert replies.event((replies.EVENT, A("n@h"), (A("stage"), A("install"), 12))).data == ("install", 12)
    assert replies.event((A("other"), 1, 2)) is None


def test_small_answers():
    assert replies.loaded((A("module"), A("m"))) is None
    assert replies.loaded((A("error"), A("badfile"))) == "badfile"
    assert replies.failure(A("ok")) is None and replies.failure((A("error"), A("no_guard"))) == "no_guard"
    assert replies.aborted((A("ok"), "0.0.2", "0.0.1")) == "0.0.1" and replies.aborted(A("x")) is None
    assert replies.digest_algo({A("algos"): [A("md5"), A("sha256")]}) == "sha256"
    assert replies.digest_algo({A("algos"): [A("md5")]}) == "md5"
    assert replies.guard_busy({A("phase"): A("waiting_commit"), A("vsn"): "0.0.2"}) == ("0.0.2", "waiting_commit")
    assert replies.guard_busy({A("phase"): A("ended"), A("vsn"): "0.0.2"}) is None
    undef = (A("EXIT"), (A("undef"), [(A("erldeploy_agent"), A("info"), [], [])]))
    assert replies.is_undef((A("badrpc"), undef), "erldeploy_agent") and not replies.is_undef(undef, "other")


def test_one_term_to_text():
    assert text([1, 2, 3]) == "[1,2,3]"          # never control characters
    assert text("abc") == "abc" and text(b"abc") == "abc" and text([]) == "" and text(None) == ""
    assert text((A("error"), A("x"))) == "{error,x}"
    assert current_and_permanent([("0.0.2", "current"), ("0.0.1", "permanent")]) == ("0.0.2", "0.0.1")
    assert current_and_permanent([("0.0.1", "permanent"), ("0.0.0", "old")]) == ("0.0.1", "0.0.1")
    assert current_and_permanent([]) == (None, None)
