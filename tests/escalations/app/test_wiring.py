"""escalations/app/wiring.py: settings become the HTTP policy, the adapter, the store and the
job context, in one pass."""

from __future__ import annotations

import pytest
import responses

from connector.base import Capability
from connector.http import RETRY_AFTER_MAX
from connector.redaction import MASK, SECRETS
from escalations.app.wiring import build_adapter, http_policy
from escalations.errors import ConfigError
from escalations.settings import Settings

BASE = "https://zammad.example"
API = f"{BASE}/api/v1"


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


def test_policy_from_settings(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings(
        helpdesk_url=BASE,
        http_connect_timeout=3,
        http_read_timeout=12,
        http_requests_per_minute=30,
        http_max_attempts=4,
        ca_bundle=bundle,
    )
    policy = http_policy(settings)
    assert policy.timeout == (3, 12)
    assert policy.requests_per_minute == 30
    assert policy.max_attempts == 4
    assert policy.retry_after_max == RETRY_AFTER_MAX == 300
    assert policy.verify == str(bundle)


def test_missing_ca_bundle_is_a_config_error(tmp_path):
    settings = Settings(helpdesk_url=BASE, ca_bundle=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="ESCALATIONS_CA_BUNDLE: CA bundle"):
        http_policy(settings)


def test_from_settings_builds_a_token_client(rsps, clock):
    token = "from-settings-token-42"
    settings = Settings(helpdesk_url=BASE + "/", helpdesk_token=token, http_read_timeout=17)
    adapter = build_adapter(settings, clock)
    rsps.add("GET", f"{API}/tags", json={"tags": []})
    adapter.get_tags(1)
    request = rsps.calls[0].request
    assert request.headers["Authorization"] == f"Token token={token}"
    assert request.headers["Accept"] == "application/json"
    assert request.req_kwargs["timeout"] == (5.0, 17.0)
    assert SECRETS.redact(token) == MASK
    assert token not in repr(adapter)
    assert adapter.capabilities == frozenset(Capability)


@pytest.mark.parametrize(
    "kw", [{"helpdesk_url": ""}, {"helpdesk_url": BASE}, {"helpdesk_url": "http://zammad.example"}]
)
def test_from_settings_refuses_incomplete_or_unsafe_config(clock, kw):
    settings = Settings(
        **({"helpdesk_token": "t0k3n-abc"} if "http:" in kw["helpdesk_url"] else {}), **kw
    )
    with pytest.raises(ConfigError):
        build_adapter(settings, clock)
