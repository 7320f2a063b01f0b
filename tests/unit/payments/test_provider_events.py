"""The Stripe events the service acts on, and the list operators subscribe the webhook endpoint to."""
import re
from pathlib import Path

from orders_service.payments.provider_events import StripeEvents

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def _documented_subscription() -> set[str]:
    """The event names of the "Subscribe the endpoint to" item of docs/operations.md."""
    text = OPERATIONS.read_text()
    start = text.index("- Subscribe the endpoint to")
    item = text[start:text.index("\n- ", start + 1)]
    listed = item[:item.index(".\n", item.index("payment_intent.")) + 1]  # the list ends at its first sentence end
    return set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", listed))


def test_the_operators_subscription_is_the_services_list():
    assert _documented_subscription() == set(StripeEvents.SUBSCRIBED)


def test_the_payment_states_a_client_sees_come_from_subscribed_events():
    assert {"payment_intent.processing", "payment_intent.requires_action", "payment_intent.succeeded",
            "payment_intent.payment_failed", "payment_intent.canceled"} <= set(StripeEvents.PAYMENT_INTENT)
    assert set(StripeEvents.PAYMENT) <= set(StripeEvents.SUBSCRIBED)
