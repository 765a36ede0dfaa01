"""Value rules shared by the write rules: e-mail syntax, custom attribute casting (Rails and
Core Workflow), attachment decoding (strict base64) and inline ``data:`` images."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

from sandbox.records import ApiError, ObjectAttribute, cast_bool, invalid_value, parse_time
from sandbox.state import as_int

_EMAIL_RE = re.compile(r"^[^\s@,;<>]+@[^\s@,;<>]+\.[^\s@,;<>]+$")
_DATA_IMG_RE = re.compile(
    r'(<img\s[^>]*?src=")data:(image/[a-z0-9.+-]+);base64,([^"]+)(")', re.IGNORECASE
)

AttachmentData = tuple[str, bytes, dict[str, str], str | None]
"""``(filename, data, preferences, content id of an inline image)``."""


def valid_email(address: str) -> bool:
    return bool(_EMAIL_RE.match(address.strip()))


def too_long(column: str, limit: int) -> ApiError:
    return ApiError(
        422,
        "PG::StringDataRightTruncation: ERROR:  value too long for type "
        f"character varying({limit}) ({column})",
        kind="detail",
    )


def default_value(attr: ObjectAttribute) -> Any:
    default = attr.data_option.get("default")
    if attr.data_type == "boolean":
        return cast_bool(default)
    return None if default in ("", None) else default


def option_keys(attr: ObjectAttribute) -> list[str]:
    options = attr.data_option.get("options") or {}
    if isinstance(options, dict):
        return [str(k) for k in options]
    return [str(o.get("value")) for o in options if isinstance(o, dict)]


def coerce_attribute(attr: ObjectAttribute, value: Any) -> Any:
    """Cast a custom attribute value the way Rails and Core Workflow do."""
    kind = attr.data_type
    if value is None:
        return None
    if kind == "boolean":
        return cast_bool(value)
    if kind in ("select", "tree_select"):
        if value == "":
            return ""
        key = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if key not in option_keys(attr):
            raise invalid_value(value, attr.name)
        return key
    if kind in ("multiselect", "multi_tree_select"):
        items = value if isinstance(value, list) else [value]
        keys = [str(v) for v in items if v not in (None, "")]
        for key in keys:
            if key not in option_keys(attr):
                raise invalid_value(key, attr.name)
        return keys
    if kind == "datetime":
        return parse_time(value)
    if kind == "date":
        text = str(value)
        return text if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    if kind == "integer":
        return as_int(value)
    if kind in ("input", "textarea", "richtext"):
        text = str(value)
        limit = as_int(attr.data_option.get("maxlength"))
        if limit is not None and len(text) > limit:
            raise too_long(attr.name, limit)
        return text
    return value


def parse_attachments(raw: object, *, keep_content_id: bool = False) -> list[AttachmentData]:
    """``attachments: [{filename, data (strict base64), mime-type}]``; only ``mime-type`` and
    ``charset`` are kept, as ``Mime-Type`` and ``Charset``. Mail arriving through a channel
    (``keep_content_id``) also keeps a ``content-id``: an inline image."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, list):
        raise ApiError(500, "attachments must be an array", kind="detail")
    out: list[AttachmentData] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ApiError(500, "attachment must be a hash", kind="detail")
        for key in ("mime-type", "filename", "data"):
            if not item.get(key):
                raise ApiError(
                    422, f"Attachment needs '{key}' param for attachment with index '{index}'"
                )
        prefs = {"Mime-Type": str(item["mime-type"])}
        if item.get("charset"):
            prefs["Charset"] = str(item["charset"])
        data = re.sub(r"[\r\n]", "", str(item["data"]))
        try:
            decoded = base64.b64decode(data, validate=True)
            if len(data) % 4:
                raise binascii.Error("padding")
        except (binascii.Error, ValueError):
            raise ApiError(422, f"Invalid base64 for attachment with index '{index}'") from None
        content_id = None
        if keep_content_id and item.get("content-id"):
            content_id = str(item["content-id"]).strip("<>")
            prefs.update({"Content-ID": content_id, "Content-Disposition": "inline"})
        out.append((str(item["filename"]), decoded, prefs, content_id))
    return out


def extract_inline_images(
    body: str,
) -> tuple[str, list[AttachmentData]]:
    """``HtmlSanitizer.replace_inline_images``: ``data:`` images become inline attachments
    referenced by ``cid:``."""
    found: list[AttachmentData] = []

    def _replace(match: re.Match[str]) -> str:
        mime = match.group(2).lower()
        try:
            data = base64.b64decode(re.sub(r"\s", "", match.group(3)), validate=True)
        except (binascii.Error, ValueError):
            return match.group(0)
        content_id = f"{secrets.token_hex(8)}@sandbox.zammad"
        ext = mime.split("/", 1)[1].split("+", 1)[0]
        prefs = {
            "Content-Type": mime,
            "Mime-Type": mime,
            "Content-ID": content_id,
            "Content-Disposition": "inline",
        }
        found.append((f"image{len(found) + 1}.{ext}", data, prefs, content_id))
        return f"{match.group(1)}cid:{content_id}{match.group(4)}"

    return _DATA_IMG_RE.sub(_replace, body), found
