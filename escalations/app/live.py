"""``escalations check --live``: the binding's checks against the real helpdesk, and an
honest verdict — what was verified, what was wrong, and what could not be verified.

With the admin token (``ESCALATIONS_HELPDESK_ADMIN_TOKEN``) every admin list provision writes
is read and compared with provision's own plan; without it, the worker's agent token reads
what Zammad lets an agent read (states, groups, roles, macros, text modules, attribute names
on a ticket) and the rest is listed as not verified. Anything not verified makes the check
fail (exit 78) unless ``--allow-unverified``: "ok" means checked.
"""

from __future__ import annotations

from collections.abc import Callable

from connector.base import HelpdeskAdapter
from connector.errors import Forbidden, Unauthorized
from connector.zammad import ZammadAdmin
from escalations.bindings.zammad import livecheck as lc
from escalations.bindings.zammad import provision as pv
from escalations.bindings.zammad.provision_spec import PROVISION_FILE, ProvisionSpec
from escalations.clock import Clock
from escalations.errors import EX_CONFIG
from escalations.mappings import Mappings, load_mapping_file
from escalations.settings import Settings


def live(
    settings: Settings,
    adapter: HelpdeskAdapter,
    mappings: Mappings,
    clock: Clock,
    *,
    allow_unverified: bool,
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """Run the live check and print its lines; the exit code: 0, or 78 for a problem (or,
    without ``allow_unverified``, for anything not verified)."""
    if mappings.helpdesk_name == "osticket":
        return _osticket(settings, adapter, mappings, out=out, err=err)
    from escalations.app.provision import build_admin, build_reader
    from escalations.carrier import carrier_template

    spec = load_mapping_file(mappings.directory / PROVISION_FILE, ProvisionSpec)
    try:
        me = adapter.me()
    except Unauthorized as exc:
        err(f"live: the token was refused ({exc.status}): check ESCALATIONS_HELPDESK_TOKEN")
        return EX_CONFIG
    kinds: tuple[str, ...]
    if settings.helpdesk_admin_token is not None:
        admin, kinds, whose = build_admin(settings, clock), lc.DRIFT_KINDS, "the admin token"
    else:
        admin, whose = build_reader(settings, clock), "the worker's token"
        kinds = tuple(k for k in lc.DRIFT_KINDS if k in lc.AGENT_READABLE)
    try:
        snapshot, readable, refused = _read(admin, kinds)
    except Unauthorized as exc:
        err(
            f"live: the admin token was refused ({exc.status}): check "
            "ESCALATIONS_HELPDESK_ADMIN_TOKEN or the helpdesk-admin-token credential"
        )
        return EX_CONFIG
    attributes_read = "object_manager_attributes" in readable
    report = lc.live_report(
        adapter,
        mappings,
        fields=lc.fields_of(snapshot) if attributes_read else None,
        fields_known=attributes_read,
        me=me,
    )
    drift = lc.provisioned_drift(mappings, spec, snapshot, readable, carrier_template(mappings))
    problems = [*report.problems, *drift.problems]
    if settings.helpdesk_admin_token is not None:
        # every list was asked for with the admin token: what it was refused is said once
        # (with the permission it lacks), not again as advice to set the admin token
        unverified = [
            *refused,
            *(u for u in report.unverified if attributes_read or u not in lc.ATTRIBUTE_ADVICE),
        ]
    else:
        unverified = [*refused, *report.unverified, *drift.unverified]
    for problem in problems:
        err(f"live: {problem}")
    notes = list(report.notes)
    if (
        settings.helpdesk_admin_token is not None
        and settings.helpdesk_token is not None
        and settings.helpdesk_admin_token.get_secret_value()
        == settings.helpdesk_token.get_secret_value()
    ):
        notes.append(
            "the worker's token is the admin token: give the worker a token with ticket.agent "
            "only (docs/admins.md §1)"
        )
    for note in [*notes, *drift.notes]:
        out(f"live: note: {note}")
    for item in unverified:
        err(f"live: {item}")
    if problems:
        return EX_CONFIG
    if unverified and not allow_unverified:
        err(
            f"live: {len(unverified)} thing(s) above not verified with {whose}; "
            "`check --live --allow-unverified` accepts that"
        )
        return EX_CONFIG
    compared = [
        f"{lc.KIND_LABELS[k]}s" for k in lc.DRIFT_KINDS if k in readable and k in lc.KIND_LABELS
    ]
    rest = "; some not verified (above)" if unverified else ""
    out(
        f"helpdesk: ok ({settings.helpdesk_url}, with {whose}: the worker's user and group "
        f"access, tags, people; as provision makes them: {', '.join(compared)}{rest})"
    )
    return 0


def _read(
    admin: ZammadAdmin, kinds: tuple[str, ...]
) -> tuple[pv.Snapshot, frozenset[str], list[str]]:
    """The admin lists the token may read; a list it may not is named as not verified."""
    lists: dict[str, list[dict[str, object]]] = {}
    refused: list[str] = []
    for kind in kinds:
        admin.expect_forbidden(kind)  # a refusal is reported below, as one line
        try:
            lists[kind] = admin.list(kind)
        except Forbidden as exc:
            label = f"{lc.KIND_LABELS[kind]}s" if kind in lc.KIND_LABELS else kind
            refused.append(f"{label}: not verified ({exc})")
    return pv.Snapshot(lists), frozenset(lists), refused


def _osticket(
    settings: Settings,
    adapter: HelpdeskAdapter,
    mappings: Mappings,
    *,
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """osTicket's live check (``escalations.bindings.osticket.livecheck``): what the mappings
    name, and one line per capability the process uses that this installation lacks. The
    comparisons are ``provision``'s, which gives the admin's step for each."""
    from escalations.bindings.osticket.livecheck import UNREAD, live_check

    problems = live_check(adapter, mappings)
    for problem in problems:
        err(f"live: {problem}")
    if problems:
        if not problems[0].startswith(UNREAD):  # compared: provision has a step for each
            err("live: `escalations provision` prints the admin's step for each line above")
        return EX_CONFIG
    out(
        f"helpdesk: ok ({settings.helpdesk_url}: the read-only account, flag status, statuses, "
        "help topic, fields, agents and every capability the process uses)"
    )
    return 0
