"""Connector send calls against the local fake platform server: request shapes, the ids taken
from the answers, and how each platform's error answers are classified."""

from __future__ import annotations

import dataclasses
import time

import pytest

from inbox.connectors import (
    ApiEndpoint,
    OutboundReply,
    PermanentSendError,
    TransientSendError,
    connector_for_platform,
    reply_modes,
)
from inbox.connectors.base import x_weighted_length
from tests.conftest import free_port
from tests.fake_platforms import (
    GRAPH_VERSION,
    FakePlatforms,
    graph_error,
    graph_invalid_token,
    graph_rate_limited,
    messenger_outside_window,
    server_error,
    whatsapp_window_closed,
    x_duplicate_tweet,
    x_rate_limited,
)
from tests.support.replies import CASES, TOKEN, Case


@pytest.fixture(scope="module")
def fake():
    server = FakePlatforms().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(fake):
    fake.reset()


def endpoint(fake: FakePlatforms, platform: str, timeout: float = 5.0) -> ApiEndpoint:
    config = fake.config()
    if platform == "x":
        return ApiEndpoint(base_url=config["INBOX_X_API_BASE"], timeout=timeout)
    return ApiEndpoint(
        base_url=f"{config['INBOX_GRAPH_API_BASE']}/{GRAPH_VERSION}", timeout=timeout
    )


def outbound(case: Case, text: str = "Sorry about that, fixed now.") -> OutboundReply:
    return OutboundReply(
        platform=str(case.platform),  # type: ignore[arg-type]
        kind=str(case.kind),  # type: ignore[arg-type]
        is_public=case.is_public,
        account_id=case.account_id,
        text=text,
        access_token=TOKEN,
        recipient_id=None if case.is_public else case.customer_id,
        reply_to_external_id=case.inbound_id if case.is_public else None,
    )


def send(fake: FakePlatforms, case: Case, **kwargs):
    connector = connector_for_platform(str(case.platform))
    return connector.send(outbound(case, **kwargs), endpoint(fake, str(case.platform)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_send_posts_the_documented_body_with_the_token_and_returns_the_platform_id(fake, name):
    case = CASES[name]
    fake.force_id("PLATFORM-ID-1")
    result = send(fake, case, text="Hi — 👋 we're on it")
    [call] = fake.calls
    assert call.path == case.path
    assert call.body == case.expected_body("Hi — 👋 we're on it")
    assert call.token == TOKEN
    assert call.headers["content-type"] == "application/json"
    assert TOKEN not in call.path  # never in the URL, where proxies and logs would see it
    assert result.external_id == "PLATFORM-ID-1"


@pytest.mark.parametrize("name", ["x_dm", "messenger", "whatsapp", "facebook_comment"])
def test_an_id_from_a_payload_cannot_change_the_api_path_the_token_goes_to(fake, name):
    case = dataclasses.replace(
        CASES[name], customer_id="../../x/2/tweets", account_id="1/../../x", inbound_id="../../me"
    )
    send(fake, case)
    [call] = fake.calls
    assert "/../" not in call.path and call.path.count("/") == case.path.count("/")


def test_x_dm_id_is_the_dm_event_id_not_the_conversation_id(fake):
    result = send(fake, CASES["x_dm"])
    assert result.raw["data"]["dm_event_id"] == result.external_id
    assert result.external_id != result.raw["data"]["dm_conversation_id"]


def test_x_rate_limit_is_transient_and_waits_until_the_window_resets(fake):
    fake.fail(x_rate_limited(reset_in=90))
    with pytest.raises(TransientSendError) as caught:
        send(fake, CASES["x_reply_tweet"])
    assert 80 <= caught.value.retry_after <= 91


def test_x_duplicate_tweet_is_permanent_with_x_wording(fake):
    fake.fail(x_duplicate_tweet())
    with pytest.raises(PermanentSendError) as caught:
        send(fake, CASES["x_reply_tweet"])
    assert caught.value.code == "403"
    assert "duplicate content" in caught.value.message


def test_messenger_outside_the_messaging_window_is_permanent_with_code_and_subcode(fake):
    fake.fail(messenger_outside_window())
    with pytest.raises(PermanentSendError) as caught:
        send(fake, CASES["messenger"])
    assert caught.value.code == "10/2018278"
    assert caught.value.message.startswith("(#10) This message is sent outside of allowed window")


def test_whatsapp_closed_24_hour_window_is_permanent_and_keeps_the_details(fake):
    fake.fail(whatsapp_window_closed())
    with pytest.raises(PermanentSendError) as caught:
        send(fake, CASES["whatsapp"])
    assert caught.value.code == "131047/2494010"
    assert "24 hours have passed" in caught.value.message


def test_invalid_token_is_permanent(fake):
    fake.fail(graph_invalid_token())
    with pytest.raises(PermanentSendError) as caught:
        send(fake, CASES["instagram_dm"])
    assert caught.value.code == "190/463"
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize(
    "failure",
    [
        graph_rate_limited(retry_after=30),
        server_error(),
        graph_error(2, "An unexpected error has occurred.", status=500),
        graph_error(100, "Temporary glitch", is_transient=True),
    ],
    ids=["rate-limit-613", "http-500", "service-error-2", "is-transient-flag"],
)
def test_graph_rate_limits_and_server_errors_are_transient(fake, failure):
    fake.fail(failure)
    with pytest.raises(TransientSendError) as caught:
        send(fake, CASES["facebook_comment"])
    if failure.headers:
        assert caught.value.retry_after == 30


def test_an_unreachable_platform_is_transient():
    connector = connector_for_platform("whatsapp")
    api = ApiEndpoint(base_url=f"http://127.0.0.1:{free_port()}/graph/v23.0", timeout=2)
    with pytest.raises(TransientSendError, match="could not reach"):
        connector.send(outbound(CASES["whatsapp"]), api)


def test_a_platform_that_does_not_answer_in_time_is_transient(fake):
    fake.fail(server_error(), delay=1.5)
    started = time.monotonic()
    with pytest.raises(TransientSendError, match="did not answer"):
        connector_for_platform("messenger").send(
            outbound(CASES["messenger"]), endpoint(fake, "messenger", timeout=0.5)
        )
    assert time.monotonic() - started < 1.4


def test_reply_repr_never_shows_the_token():
    assert TOKEN not in repr(outbound(CASES["x_dm"]))


def test_reply_modes_give_each_platform_limit_as_data():
    limits = {
        (m.platform, m.kind, m.is_public): (m.max_length, m.unit)
        for key in [
            ("x", "dm"),
            ("x", "mention"),
            ("messenger", "dm"),
            ("instagram", "dm"),
            ("instagram", "comment"),
            ("facebook", "comment"),
            ("whatsapp", "dm"),
        ]
        for m in reply_modes(*key)
    }
    assert limits == {
        ("x", "dm", False): (10000, "chars"),
        ("x", "mention", True): (280, "x_weighted"),
        ("messenger", "dm", False): (2000, "chars"),
        ("instagram", "dm", False): (1000, "utf8_bytes"),
        ("instagram", "comment", True): (1000, "chars"),
        ("facebook", "comment", True): (8000, "chars"),
        ("whatsapp", "dm", False): (4096, "chars"),
    }
    assert reply_modes("instagram", "mention") == ()


def test_x_weighted_length_counts_urls_as_23_and_cjk_as_2():
    assert x_weighted_length("hello") == 5
    assert x_weighted_length("see https://example.com/a/very/long/path/indeed") == 4 + 23
    assert x_weighted_length("日本") == 4
    assert x_weighted_length("Ωμέγα") == 5
