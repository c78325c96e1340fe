"""signals/messages.py builds every message the server sends an EA from its row; its command table is keyed on the
kinds' values (signals may not import trading's EACommand), so it must cover exactly the kinds the model allows."""

from __future__ import annotations

from signals.messages import COMMAND_TYPES
from trading.models import EACommand


def test_every_command_kind_has_a_wire_command_and_no_other():
    assert set(COMMAND_TYPES) == set(EACommand.Kind.values)
