"""Pure pieces of issue 10: the converge command after a split, the missing-member lines."""

from __future__ import annotations

from pyrlang_deploy.release.converge import converge_hint, converge_target
from pyrlang_deploy.release.membership import Expected, missing
from pyrlang_deploy.release.outcome import NodeOutcome


def outcome(node: str, cur: str | None, perm: str | None) -> NodeOutcome:
    return NodeOutcome(node, "1", "2", current=cur, permanent=perm)


def test_one_release_needs_no_command():
    outs = [outcome("a@h", "2", "2"), outcome("b@h", "2", "2"), outcome("c@h", None, None)]
    assert converge_target(outs, "2", "1", "commit") is None


def test_split_converges_on_the_decision():
    outs = [outcome("a@h", "2", "2"), outcome("b@h", "1", "1")]
    assert converge_target(outs, "2", "1", "commit") == "2"
    assert converge_target(outs, "2", "1", "abort") == "1"
    assert converge_target(outs, "2", "1", None) == "2"          # plain RPC: a node reached make_permanent
    hint = converge_hint(outs, "2", "1", "abort")
    assert hint.endswith("converge with: erldeploy install 1 -n a@h -n b@h"), hint
    assert "a@h runs 2 (permanent 2)" in hint


def test_installed_but_not_permanent_is_not_one_release():
    assert converge_target([outcome("a@h", "2", "1")], "2", "1", None) == "1"


def test_missing_members():
    lines = missing(["a@h", "b@h"], ["d@h"], Expected(("a@h", "c@h", "d@h"), 4, "env t"),
                    {"e@h": ["a@h", "b@h"], "a@h": ["b@h"], "t@h": ["a@h"]})
    assert lines == ["c@h: expected (env t) but not in the cluster",
                     "e@h: was connected to a@h, b@h and is now down (net_kernel)",
                     "expected 4 members (env t), found 2: a@h, b@h"]
    assert missing(["a@h"], [], Expected(), {}) == []
    # one member left: a lost node it knew may have been a tool's hidden connection
    assert missing(["a@h"], [], Expected(), {"e@h": ["a@h"]}) == []


def test_status_split_hint_names_the_committed_release():
    from pyrlang_deploy.release.converge import split_hint

    runs = {"a@h": ("2", "2"), "b@h": ("2", "2"), "c@h": ("1", "1")}
    hint = split_hint(runs, {"a@h": "2", "b@h": "2"})
    assert hint.endswith("converge with: erldeploy install 2 -n a@h -n b@h -n c@h") and "c@h did not" in hint
    assert split_hint(runs, {}) is None                       # no guarded run to go by
    assert split_hint({"a@h": ("2", "2")}, {"a@h": "2"}) is None
