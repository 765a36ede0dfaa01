"""The typed contract between whoever asks for a write and the executor that makes it.

- An ``EffectKind`` is one kind of write: its name, the version and pydantic model of its
  payload, the one function that builds its keys, and how it is carried out (``apply``), found
  again by marker after a crash (``find``) and followed up (``on_commit``, ``on_fail``, both
  run inside the executor's transaction). A kind is given its target (the helpdesk adapter, an
  archive directory) when it is built, so every kind fits the same executor.
- An ``Intent`` is one requested write of a kind: its natural key (the marker is computed from
  kind and key, so it can be recomputed after the store is lost), its validated payload, the
  escalation it belongs to and, optionally, the stored effect it must wait for (``after``).
- An ``EffectRef`` (``escalations.models``) names a stored effect by kind and key.

Payloads are stored as canonical JSON with their version; a row written by an older version is
upgraded (``EffectKind.upgrade``) and validated again when it is loaded, so a renamed field
after an upgrade is a clear load error, not a handler bug.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from connector.base import Marker
from escalations.errors import EscalationsError
from escalations.markers import marker_for
from escalations.models import EffectRef

if TYPE_CHECKING:
    from escalations.models import Effect
    from escalations.store.base import Transaction

KEY_SEPARATOR = ":"


class EffectError(EscalationsError):
    """An intent that cannot be requested (unknown kind, wrong payload, missing prerequisite),
    or a stored effect whose payload does not load."""


class Payload(BaseModel):
    """Base of every effect payload: frozen, no unknown fields, JSON-able."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


P = TypeVar("P", bound=Payload)


def effect_key(purpose: str, scope: str, *parts: object) -> str:
    """``purpose:scope[:part…]``, e.g. ``level-note:zammad:ticket:5:1:2``. ``purpose`` says what
    the write is for among writes of one kind; ``scope`` is usually the escalation's key."""
    if not purpose or KEY_SEPARATOR in purpose:
        raise ValueError(f"bad key purpose {purpose!r}")
    if not scope:
        raise ValueError("a key needs a scope")
    return KEY_SEPARATOR.join([purpose, scope, *(str(p) for p in parts)])


def key_purpose(key: str) -> str:
    """The purpose a key was built with (its first segment)."""
    return key.split(KEY_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class Intent:
    """A write a job (through the lifecycle or a binding) wants made. Build it with
    ``EffectKind.intent`` so the payload is the kind's own model."""

    kind: str
    key: str
    payload: Payload
    escalation_id: int | None = None
    after: EffectRef | None = None
    """A stored (or earlier in the same transaction) effect that must finish first."""
    version: int = 1

    def __post_init__(self) -> None:
        if not self.kind or not self.key:
            raise ValueError("an intent needs a kind and a key")

    @property
    def marker(self) -> Marker:
        return marker_for(self.kind, self.key)

    @property
    def ref(self) -> EffectRef:
        """What another intent's ``after`` names to wait for this one."""
        return EffectRef(self.kind, self.key)

    @cached_property
    def payload_json(self) -> str:
        return canonical_json(self.payload.model_dump(mode="json", by_alias=True))

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload_json.encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class EffectKind(Generic[P]):
    """One kind of write. Subclasses set ``name``, ``payload_type`` (and ``version`` when the
    payload changes, with an ``upgrade`` from older versions) and implement ``apply``; kinds
    that are not idempotent implement ``find``."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    payload_type: ClassVar[type[Payload]]
    purposes: ClassVar[frozenset[str]] = frozenset()
    """The purposes its keys may have; empty: any."""

    # -- requesting (class methods: whoever builds intents needs no target) -------------
    @classmethod
    def key(cls, purpose: str, scope: str, *parts: object) -> str:
        """The natural key of one write of this kind (the one place keys are built)."""
        if cls.purposes and purpose not in cls.purposes:
            raise ValueError(f"{cls.name}: unknown key purpose {purpose!r}")
        return effect_key(purpose, scope, *parts)

    @classmethod
    def intent(
        cls,
        key: str,
        payload: Payload,
        *,
        escalation_id: int | None = None,
        after: EffectRef | None = None,
    ) -> Intent:
        if not isinstance(payload, cls.payload_type):
            raise EffectError(
                f"{cls.name}: payload must be {cls.payload_type.__name__}, "
                f"not {type(payload).__name__}"
            )
        return Intent(
            cls.name, key, payload, escalation_id=escalation_id, after=after, version=cls.version
        )

    # -- loading -------------------------------------------------------------------------
    def upgrade(self, data: Mapping[str, Any], version: int) -> Mapping[str, Any]:
        """A payload stored by an older version, in the current version's shape."""
        return data

    def load(self, data: Mapping[str, Any], version: int) -> P:
        """Validate a stored payload (upgrading it first if it is older)."""
        if version > self.version:
            raise EffectError(
                f"{self.name}: payload version {version} is newer than this code understands "
                f"({self.version}); upgrade helpdesk-escalations"
            )
        try:
            payload = self.payload_type.model_validate(
                self.upgrade(data, version) if version < self.version else data
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise EffectError(
                f"{self.name}: stored payload does not load ({where}: {first['msg']})"
            ) from None
        return payload  # type: ignore[return-value]  # payload_type is P's class

    # -- carrying out --------------------------------------------------------------------
    def apply(self, effect: Effect, payload: P) -> str | None:
        """Make exactly one write carrying ``effect.marker``; return the remote id, if any."""
        raise NotImplementedError

    def find(self, effect: Effect, payload: P) -> str | None:
        """The remote id of an earlier write of this effect, found by marker with reads that
        do not lag (database-backed); ``None`` if absent, or for an idempotent kind that needs
        no look."""
        return None

    def on_commit(self, tx: Transaction, effect: Effect, payload: P, remote_id: str | None) -> None:
        """Runs in the transaction that marks the effect done (may request follow-ups)."""
        return

    def on_fail(
        self, tx: Transaction, effect: Effect, payload: P, error: str, cause: Exception | None
    ) -> None:
        """Runs in the transaction that marks the effect failed for good; ``cause`` is the
        helpdesk's refusal, if that is why (``None`` after too many attempts)."""
        return


@dataclass
class Registry:
    """The effect kinds an executor and an outbox know, by name."""

    kinds: dict[str, EffectKind[Any]] = field(default_factory=dict)

    def add(self, *kinds: EffectKind[Any]) -> Registry:
        for kind in kinds:
            if kind.name in self.kinds:
                raise ValueError(f"effect kind {kind.name!r} registered twice")
            self.kinds[kind.name] = kind
        return self

    def get(self, name: str) -> EffectKind[Any] | None:
        return self.kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.kinds
