"""The pure rules of outbound webhooks: what each answer means, when the next attempt comes, which
addresses are refused, and the numbering of an order's events within one sequencer run."""
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

from orders_service.webhooks import urls
from orders_service.webhooks.sender import Answer
from orders_service.webhooks.sending import Outcome, next_step, outcome_of, retry_after_seconds
from orders_service.webhooks.sequencer import _in_order_per_order

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
SCHEDULE = (5, 300, 1800)


def _answer(status, retry_after=None, location=None, excerpt=""):
    return Answer(status, retry_after, location, excerpt)


@pytest.mark.parametrize("attempts, expected", [
    (1, ("failed", NOW + timedelta(seconds=5))),
    (2, ("failed", NOW + timedelta(seconds=300))),
    (3, ("failed", NOW + timedelta(seconds=1800))),
    (4, ("dead", None)),  # the first attempt and one per wait: then no retry is left
    (5, ("dead", None)),  # a dead delivery retried by hand, failing again
])
def test_each_failed_attempt_waits_the_next_entry_then_the_delivery_is_dead(attempts, expected):
    assert next_step(attempts, SCHEDULE, Outcome(500, "HTTP 500"), NOW) == expected


def test_a_2xx_delivers_whatever_the_attempt():
    for status in (200, 201, 204, 299):
        assert next_step(9, SCHEDULE, outcome_of(_answer(status), NOW), NOW) == ("succeeded", None)


def test_retry_after_lengthens_a_wait_but_never_shortens_it():
    asked = outcome_of(_answer(503, "600"), NOW)
    assert asked.retry_after == 600 and next_step(1, SCHEDULE, asked, NOW) == ("failed", NOW + timedelta(seconds=600))
    assert next_step(3, SCHEDULE, outcome_of(_answer(429, "60"), NOW), NOW)[1] == NOW + timedelta(seconds=1800)
    assert next_step(4, SCHEDULE, asked, NOW) == ("dead", None)  # it does not add retries either


@pytest.mark.parametrize("header, seconds", [
    ("120", 120), (" 7 ", 7), ("99999999", 86400), (format_datetime(NOW + timedelta(minutes=2), usegmt=True), 120),
    (format_datetime(NOW - timedelta(minutes=2), usegmt=True), 0), ("soon", None), ("", None), (None, None),
    ("-5", None), ("Mon, 07 Dec 2026 12:00:00", None),
])
def test_retry_after_is_seconds_or_an_http_date(header, seconds):
    assert retry_after_seconds(header, NOW) == seconds


def test_retry_after_counts_only_on_429_and_503():
    assert outcome_of(_answer(500, "60"), NOW).retry_after is None
    assert outcome_of(_answer(429, "60"), NOW).retry_after == 60


def test_what_each_answer_says():
    assert outcome_of(_answer(302, location="https://elsewhere/"), NOW).error == (
        "HTTP 302: redirect to https://elsewhere/ not followed")
    assert outcome_of(_answer(410), NOW).gone
    assert outcome_of(_answer(500, excerpt="  database down \n"), NOW).error == "HTTP 500: database down"
    assert outcome_of(_answer(404), NOW).error == "HTTP 404"


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("100.64.0.1", "not a public"), ("192.0.2.1", "private"), ("240.0.0.1", "private"),
])
def test_addresses_inside_are_refused(address, reason):
    assert reason in urls.refusal(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert urls.refusal(address) is None


def test_a_url_s_parts():
    target = urls.parse("https://Erp.Example.com:8443/hooks/orders?shop=1#frag", https_only=True)
    assert target == urls.Target("https", "erp.example.com", 8443, "/hooks/orders?shop=1")
    assert urls.parse("http://93.184.216.34", https_only=False) == urls.Target("http", "93.184.216.34", 80, "/")
    with pytest.raises(urls.UrlRefused, match="https"):
        urls.parse("http://93.184.216.34", https_only=True)
    with pytest.raises(urls.UrlRefused, match="control"):
        urls.parse("http://93.184.216.34/a b", https_only=False)


def test_an_order_s_events_keep_their_order_within_a_run_whatever_the_clocks_say():
    """Two hosts' clocks disagree: the order's second event carries an earlier time than its first."""
    e = [SimpleNamespace(id=i, order_id=order, order_sequence=n) for i, (order, n) in
         enumerate([("A", 2), ("B", 1), ("A", 1), ("A", 3), ("B", 2)])]
    ordered = _in_order_per_order(e)
    assert [(x.order_id, x.order_sequence) for x in ordered] == [("A", 1), ("B", 1), ("A", 2), ("A", 3), ("B", 2)]
