"""A page's form speaks a person's terms; the form route turns them into the command's."""

from __future__ import annotations

from app.domain.catalogue import BY_NAME
from app.web.forms import _as_the_command_reads_it


def test_an_expiry_in_minutes_or_hours_becomes_seconds() -> None:
    reserve = BY_NAME["reserve"]
    assert _as_the_command_reads_it(reserve, {"expires_in": "5", "expires_unit": "minutes"})["expires_in"] == "300"
    assert _as_the_command_reads_it(reserve, {"expires_in": "2", "expires_unit": "hours"})["expires_in"] == "7200"
    assert _as_the_command_reads_it(reserve, {"expires_in": "", "expires_unit": "hours"})["expires_in"] == ""
    assert "expires_unit" not in _as_the_command_reads_it(reserve, {"expires_in": "9", "expires_unit": "minutes"})


def test_units_removed_for_a_removing_reason_are_negative_unless_signed() -> None:
    adjust = BY_NAME["adjust"]
    assert _as_the_command_reads_it(adjust, {"quantity": "2", "reason": "sold"})["quantity"] == "-2"
    assert _as_the_command_reads_it(adjust, {"quantity": "2", "reason": "received"})["quantity"] == "2"
    assert _as_the_command_reads_it(adjust, {"quantity": "2", "reason": "correction"})["quantity"] == "2"
    # A sign of its own is kept, so the command's rule still refuses "sold, +2".
    assert _as_the_command_reads_it(adjust, {"quantity": "+2", "reason": "sold"})["quantity"] == "+2"
    assert _as_the_command_reads_it(BY_NAME["count"], {"counted": "2", "reason": "sold"}) == {
        "counted": "2",
        "reason": "sold",
    }
