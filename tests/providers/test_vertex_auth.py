"""Vertex AI's access token: fetched once, refreshed ahead of its expiry without holding other requests up."""

import time

from google_credentials import service_account_info

from ziri_images.providers.base import Provider
from ziri_images.providers.gemini import neutral_usage
from ziri_images.providers.vertex_auth import REFRESH_AHEAD
from ziri_images.providers.vertex_auth import TokenSource

TOKEN_URI = "https://oauth2.test/token"


class Vertex(Provider):
    name = "vertex"


def test_a_token_is_fetched_once_and_reused_until_it_nears_its_expiry(responses_mock):
    endpoint = responses_mock.post(TOKEN_URI, json={"access_token": "ya29.one", "expires_in": 3600})
    tokens = TokenSource(service_account_info(TOKEN_URI), (2, 5))

    assert [tokens.token(Vertex()) for _ in range(3)] == ["ya29.one"] * 3
    assert endpoint.call_count == 1


def test_a_token_near_its_expiry_is_refreshed_by_one_request_while_the_others_use_it(responses_mock):
    responses_mock.post(TOKEN_URI, json={"access_token": "ya29.two", "expires_in": 3600})
    tokens = TokenSource(service_account_info(TOKEN_URI), (2, 5))
    tokens._token, tokens._expires = "ya29.one", time.monotonic() + REFRESH_AHEAD / 2

    with tokens._lock:  # another request is refreshing it
        assert tokens.token(Vertex()) == "ya29.one"  # answered at once, not after the refresh
    assert tokens.token(Vertex()) == "ya29.two"


def test_usage_whose_counts_cannot_be_read_has_no_output_tokens():
    assert "output_tokens" not in neutral_usage({"promptTokenCount": 5})  # no candidates count beside an image
    assert "output_tokens" not in neutral_usage({"promptTokenCount": 5, "candidatesTokenCount": "many"})
    assert "output_tokens" not in neutral_usage(None)
    assert neutral_usage({"promptTokenCount": 5}, expect_output=False)["output_tokens"] == 0
