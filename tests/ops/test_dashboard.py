"""The spend dashboard: off without a token, refuses without it, signs in safely, shows the store's figures."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import openai_image_response

from ziri_images.ops import dashboard_page

TOKEN = "admin-token-abcdef0123456789"
PROJECT_DIR = Path(__file__).resolve().parents[2]
BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a fox", "size": "1024x1024", "quality": "standard"}


@pytest.fixture
def admin(make_app):
    return make_app(ADMIN_TOKEN=TOKEN).test_client()


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def sign_in(client, token=TOKEN):
    form = client.get("/admin/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.get_data(as_text=True)).group(1)
    return client.post("/admin/login", data={"csrf": nonce, "token": token})


def test_off_without_a_token(client):
    for path in ("/admin/", "/admin/login"):
        response = client.get(path, headers=bearer(""))
        assert response.status_code == 404 and response.get_json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="nothing"),
    pytest.param(bearer("wrong"), id="wrong-token"),
    pytest.param({"X-API-Key": USER_KEY}, id="an-api-key"),
    pytest.param({"Cookie": "ziri_admin=forged.value.sig"}, id="forged-cookie"),
])
def test_refuses_without_the_token(admin, headers):
    response = admin.get("/admin/", headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == "ADMIN_TOKEN_INVALID" and body["requestId"].startswith("req_")


def test_a_browser_is_sent_to_the_login_form(admin):
    response = admin.get("/admin/", headers={"Accept": "text/html"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/login"


def test_login_sets_a_strict_httponly_signed_cookie(admin):
    response = sign_in(admin)
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("ziri_admin="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert admin.get("/admin/").status_code == 200


def test_login_with_a_wrong_token_or_no_csrf_is_refused(admin):
    assert sign_in(admin, "wrong").status_code == 401
    assert admin.get("/admin/").status_code == 401
    # A post from another site carries no CSRF cookie of ours.
    fresh = admin.application.test_client()
    assert fresh.post("/admin/login", data={"csrf": "x", "token": TOKEN}).status_code == 400
    assert fresh.get("/admin/").status_code == 401


def test_a_session_ends_when_the_token_changes(make_app):
    client = make_app(ADMIN_TOKEN=TOKEN).test_client()
    sign_in(client)
    other = make_app(ADMIN_TOKEN="another-token-0000000000")
    cookie = client.get_cookie("ziri_admin", path="/admin").value
    assert other.test_client().get("/admin/", headers={"Cookie": f"ziri_admin={cookie}"}).status_code == 401


@pytest.mark.stores()
def test_the_page_shows_spend_budgets_models_and_refusals(admin, add_key, responses_mock):
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200
    denied = add_key(key_id="key_denied", user="<script>x</script>", allowed_models=["gpt-image-1"])
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": denied}).status_code == 403
    admin.application.extensions["ziri_images_refusals"].flush()
    response = admin.get("/admin/", headers=bearer())
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert len(re.findall(r'<rect class="bar"', page)) == 30
    assert re.search(r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="[\d.]+"\s+height="166.0"', page)
    assert "$0.0400" in page and "dall-e-3" in page and "$50.00" in page  # alice's monthly budget
    assert "AUTHORIZATION_DENIED" in page and "key_denied" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    offline = page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
    assert "http://" not in offline and "https://" not in offline and "src=" not in offline
    assert TOKEN not in page


def row_of(page, table_id, name):
    """Return the HTML of the row for ``name`` in the table ``table_id``."""
    table = re.search(rf'<table id="{table_id}">.*?</table>', page, re.S).group(0)
    return re.search(rf"<tr><td>{re.escape(name)}</td>.*?</tr>", table, re.S).group(0)


@pytest.mark.stores()
def test_a_daily_budget_shows_on_the_page_with_spend_per_key_and_model_over_time(
        admin, add_key, clock, responses_mock):
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    daily_only = add_key(key_id="key_daily", limits={"daily_spend_limit": 0.05})
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": daily_only}).status_code == 200
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200
    clock.advance(24 * 3600)
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": daily_only}).status_code == 200
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": daily_only}).status_code == 402

    page = admin.get("/admin/", headers=bearer()).get_data(as_text=True)

    budgets = row_of(page, "budgets", "key_daily")
    assert "$0.05" in budgets and "80%" in budgets  # today: $0.04 of $0.05, though no monthly budget
    assert budgets.count("unlimited") == 1
    alice = row_of(page, "budgets", "key_user")
    assert "$5.00" in alice and "$50.00" in alice and "unlimited" not in alice
    per_key = row_of(page, "spend-per-key", "key_daily")
    assert "<title>2026-11-26: $0.0400</title>" in per_key and "<title>2026-11-27: $0.0400</title>" in per_key
    assert "$0.0800" in per_key  # the 30 days' total
    assert "<title>2026-11-26: $0.0400</title>" in row_of(page, "spend-per-key", "key_user")
    per_model = row_of(page, "spend-per-model", "dall-e-3")
    assert "<title>2026-11-26: $0.0800</title>" in per_model and "<title>2026-11-27: $0.0400</title>" in per_model
    assert len(re.findall(r'<rect class="bar"', page)) == 30  # the spend chart is unchanged


@pytest.mark.stores()
def test_the_budget_alerts_show_with_their_delivery(make_app, add_key, responses_mock):
    webhook = "https://hooks.test/ziri"
    app = make_app(ADMIN_TOKEN=TOKEN, ALERT_WEBHOOK_URL=webhook, ALERT_WEBHOOK_SECRET="s", ALERT_THRESHOLDS=(50,))
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    responses_mock.post(webhook, status=500)
    watched = add_key(key_id="key_watched", limits={"daily_spend_limit": 0.08})
    client = app.test_client()
    assert client.post(ENDPOINT, json=BODY, headers={"X-API-Key": watched}).status_code == 200
    app.extensions["ziri_images"].alerts.run_once()

    page = client.get("/admin/", headers=bearer()).get_data(as_text=True)

    alert = re.search(r'<table id="alerts">.*?</table>', page, re.S).group(0)
    assert "key_watched" in alert and "daily_spend_limit $0.08" in alert and "50%" in alert
    assert "pending" in alert and "(HTTP 500)" in alert and "$0.0400" in alert


def test_the_pages_are_autoescaped_template_files_of_the_package(admin):
    templates = Path(dashboard_page.__file__).parent / "templates"
    app = admin.application

    for name in ("dashboard_base.html", "dashboard.html", "dashboard_login.html"):
        _source, filename, _uptodate = app.jinja_env.loader.get_source(app.jinja_env, name)
        assert Path(filename) == templates / name
        assert app.jinja_env.autoescape(name) is True  # every value in them is escaped
    assert "<html" not in Path(dashboard_page.__file__).read_text()  # no HTML left in Python strings


def test_the_built_package_carries_the_dashboard_templates(tmp_path):
    # setuptools' build_py collects what a wheel or an install ships: .py files and the declared package data.
    source = tmp_path / "source"
    shutil.copytree(PROJECT_DIR, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "var", "build", "__pycache__", "*.egg-info", "node_modules", ".pytest_cache", "tests",
        "bench"))
    built = tmp_path / "built"
    run = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                          "--build-lib", str(built)], cwd=source, capture_output=True, text=True, timeout=120,
                         check=False)

    assert run.returncode == 0, run.stderr
    shipped = sorted(path.name for path in (built / "ziri_images" / "ops" / "templates").glob("*.html"))
    assert shipped == ["dashboard.html", "dashboard_base.html", "dashboard_login.html"]


@pytest.mark.stores()
def test_the_page_lists_the_teams_and_each_keys_team(admin, responses_mock):
    registry = admin.application.extensions["ziri_images"].registry
    registry.create_team("cli", "<Design>", team_id="team_design", limits={"daily_spend_limit": 25,
                                                                         "requests_per_minute": 60})
    registry.update_key("cli", "key_user", team="team_design")
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200

    page = admin.get("/admin/", headers=bearer()).get_data(as_text=True)

    assert "<title>2026-11-26: $0.0400</title>" in row_of(page, "spend-per-team", "team_design")

    team = row_of(page, "teams", "team_design")
    assert "&lt;Design&gt;" in team and "$25.00" in team and ">60<" in team and team.count("none") == 2
    assert ">team_design<" in row_of(page, "budgets", "key_user")
