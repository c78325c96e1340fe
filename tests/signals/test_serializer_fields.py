"""The signal serializers build their fields once per class and give each instance copies of its own
(signals.serializers.FieldsCopiedOnce): no instance sees another's binding, input or output."""

from __future__ import annotations

from decimal import Decimal

import pytest

from signals.serializers import SignalInputSerializer, SignalOutputSerializer
from tests.factories import make_account, make_signal, make_tenant, make_user


def test_each_instance_has_its_own_bound_fields():
    first, second = SignalInputSerializer(data={}), SignalInputSerializer(data={})
    for name in ("symbol", "metadata", "volume"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
    assert SignalOutputSerializer().fields["entry_price_range"].parent is not None


def test_two_inputs_validate_to_their_own_values_and_errors():
    good = SignalInputSerializer(data={"account_id": "a", "symbol": "EURUSD", "action": "BUY", "volume": "0.1",
                                       "metadata": {"polygon_ask": 1.1}})  # fmt: skip
    bad = SignalInputSerializer(data={"account_id": "b", "symbol": "GBPUSD", "action": "SELL", "volume": "x"})
    other = SignalInputSerializer(data={"account_id": "c", "symbol": "USDJPY", "action": "SELL", "volume": "2"})

    assert good.is_valid() and not bad.is_valid() and other.is_valid()
    assert (good.validated_data["symbol"], good.validated_data["volume"]) == ("EURUSD", Decimal("0.1"))
    assert good.validated_data["metadata"] == {"polygon_ask": 1.1} and other.validated_data["metadata"] == {}
    assert (other.validated_data["symbol"], other.validated_data["volume"]) == ("USDJPY", Decimal("2"))
    assert set(bad.errors) == {"volume"}


def test_two_outputs_show_their_own_signal(db):
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    one, two = make_signal(account, symbol="EURUSD"), make_signal(account, symbol="XAUUSD", entry_price_min=None)

    first, second = SignalOutputSerializer(one).data, SignalOutputSerializer(two).data

    assert (first["signal_id"], first["symbol"]) == (str(one.signal_id), "EURUSD")
    assert (second["signal_id"], second["symbol"]) == (str(two.signal_id), "XAUUSD")
    assert second["entry_price_range"] is None


def test_a_serializer_with_a_nested_serializer_is_refused():
    from rest_framework import serializers

    from signals.serializers import FieldsCopiedOnce

    class Nesting(FieldsCopiedOnce, serializers.Serializer):
        name = serializers.CharField()
        items = serializers.ListField(child=SignalInputSerializer())

    with pytest.raises(TypeError, match=r"\['items'\] nest a serializer"):
        Nesting(data={}).fields  # noqa: B018


@pytest.mark.parametrize("serializer", [SignalInputSerializer, SignalOutputSerializer])
def test_each_fields_copy_is_what_copy_copy_makes(serializer):
    """`_field_copy` stands in for `copy.copy`: a new field of the same class with the same attributes, the
    template itself left alone by the copy's binding."""
    import copy

    from signals.serializers import _field_copy

    serializer().fields  # noqa: B018 — builds the class's templates
    for name, template in serializer._field_templates.items():
        clone, reference = _field_copy(template), copy.copy(template)
        assert type(clone) is type(reference) and clone is not template, name
        assert clone.__dict__ == reference.__dict__, name
        clone.bind(name, serializer())
        assert template.__dict__ == reference.__dict__, name
