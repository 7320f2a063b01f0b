"""GET /metrics behind `Authorization: Bearer <METRICS_TOKEN>` when the token is set
(docs/api.md, "Operations routes")."""
import pytest


@pytest.fixture
def guarded(app_with):
    return app_with(metrics_token="scrape-secret").test_client()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer scrape-secret-and-more", "scrape-secret",
                                           "Basic c2NyYXBlLXNlY3JldA==", "Bearer "])
def test_metrics_without_the_token_are_401(guarded, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = guarded.get("/metrics", headers=headers)
    assert response.status_code == 401 and response.is_json and response.json["code"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "orders_http_requests_total" not in response.get_data(as_text=True)


def test_metrics_with_the_token_are_served(guarded):
    response = guarded.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert response.status_code == 200 and response.mimetype == "text/plain"


def test_without_a_token_set_metrics_are_open(client):
    assert client.get("/metrics").status_code == 200


def test_health_needs_no_token_whatever_is_set(guarded):
    assert guarded.get("/healthz").status_code == 200
