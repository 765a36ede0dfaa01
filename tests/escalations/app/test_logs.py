"""Secrets never reach the log, however they travel: message, arguments or traceback."""

from __future__ import annotations

import io
import logging
import secrets

import pytest

from connector.redaction import SECRETS, RedactingFilter
from escalations.app.logs import FORMAT, RedactingFormatter
from escalations.errors import ConfigError
from escalations.settings import load_settings


@pytest.fixture
def logged() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test.redaction.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.propagate = False
    return logger, stream


def test_a_token_in_a_traceback_is_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    token = "witness-" + secrets.token_hex(12)
    SECRETS.add(token)
    try:
        raise ValueError(f"Invalid header value b'Token token={token}\\r'")
    except ValueError:
        logger.exception("job.failed job=sync")
    text = stream.getvalue()
    assert "Traceback" in text
    assert token not in text
    assert "**********" in text


def test_an_authorization_header_in_a_message_is_masked(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.warning("request headers %s", {"Authorization": "Token token=unregistered-value"})
    assert "unregistered-value" not in stream.getvalue()


@pytest.mark.parametrize("bad", ["abc def", "abc\rdef", "abc\x07def"])
def test_a_token_with_whitespace_inside_is_refused(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ESCALATIONS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", bad)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "ESCALATIONS_HELPDESK_TOKEN" in str(err.value)
    assert bad not in str(err.value)


def test_a_trailing_line_end_on_the_token_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "good-token\r\n")
    settings = load_settings()
    assert settings.helpdesk_token is not None
    assert settings.helpdesk_token.get_secret_value() == "good-token"
