"""The node-state table: every allowed change, and the ones refused."""

from __future__ import annotations

import pytest

from pyrlang_deploy.release.outcome import (
    TRANSITIONS,
    Change,
    IllegalTransition,
    NodeOutcome,
    NodeState,
    may_roll_back,
    next_state,
)

S, C = NodeState, Change


def test_result_strings_are_the_json_ones():
    assert [s.value for s in NodeState] == ["untouched", "already", "installed", "permanent", "failed",
                                          "rolled_back", "rollback_failed"]
    assert str(S.ROLLED_BACK) == "rolled_back"


@pytest.mark.parametrize("path,end", [
    ([C.INSTALLED, C.COMMITTED], S.PERMANENT),
    ([C.INSTALLED, C.FAILED, C.ROLLED_BACK], S.FAILED),        # a failed node stays failed when taken back
    ([C.INSTALLED, C.ROLLED_BACK], S.ROLLED_BACK),              # another node failed: this one went back
    ([C.INSTALLED, C.ROLLBACK_FAILED], S.ROLLBACK_FAILED),
    ([C.FAILED, C.ROLLBACK_FAILED], S.ROLLBACK_FAILED),
])
def test_paths(path, end):
    o = NodeOutcome("n", "0.0.1", "0.0.2")
    for change in path:
        o.apply(change)
    assert o.result is end


@pytest.mark.parametrize("state", [S.ALREADY, S.PERMANENT, S.ROLLED_BACK, S.ROLLBACK_FAILED])
def test_final_states_take_no_change(state):
    for change in Change:
        with pytest.raises(IllegalTransition):
            next_state(state, change)


def test_untouched_cannot_be_committed_or_rolled_back():
    for change in (C.COMMITTED, C.ROLLED_BACK, C.ROLLBACK_FAILED):
        assert (S.UNTOUCHED, change) not in TRANSITIONS
    assert not may_roll_back(S.UNTOUCHED) and not may_roll_back(S.ALREADY)
    assert may_roll_back(S.INSTALLED) and may_roll_back(S.FAILED)


def test_errors_accumulate_and_json_keeps_the_string():
    o = NodeOutcome("n", "0.0.1", "0.0.2")
    o.apply(C.FAILED, "verify failed")
    o.apply(C.ROLLBACK_FAILED, "rollback failed: x")
    assert o.error == "verify failed; rollback failed: x"
    assert o.to_json()["result"] == "rollback_failed"
