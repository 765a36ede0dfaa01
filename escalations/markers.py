"""Markers: deterministic references computed from an effect's natural key, so they can be
recomputed after the local store is lost and found again in the helpdesk."""

from __future__ import annotations

import hashlib

from connector.base import MARKER_RE, Marker

PREFIX = "hde1-"


def marker_for(kind: str, key: str) -> Marker:
    digest = hashlib.sha256(f"{kind}\x1f{key}".encode()).hexdigest()
    return Marker(PREFIX + digest[:16])


def markers_in(text: str) -> list[Marker]:
    return [Marker(m) for m in MARKER_RE.findall(text or "")]
