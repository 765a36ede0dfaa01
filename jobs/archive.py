"""The ``archive`` job (DESIGN.md rule 8, issue 12 #4): the hard copy of every escalation the
customer confirmed and the worker closed, one directory each under ``ESCALATIONS_ARCHIVE_DIR``:

- ``escalation.pdf`` — the printable copy (``escalations.archive.pdf``);
- ``record.json`` — the machine-readable record (``escalations.archive.record``);
- ``attachments/`` — every attachment of the escalation ticket's articles, under a safe name;
- ``manifest.json`` — the SHA-256 of every file.

Reads first (the ticket, its articles, their attachments); then the intent is recorded (the
directory about to be written, for which close: ``archive_intent``); then the directory is
written atomically (``escalations.archive.directory``); then one transaction records it (and
drops the intent) and marks the escalation archived.

A run interrupted after its intent (a crash, a kill, a lost lease) is finished by the next
pass, before anything else, without the helpdesk: a directory in place verifies and is
recorded as the copy of the close it was written for (the escalation marked archived when
that close is still its last; when an agent reopened it meanwhile, it stays open and the copy
is kept, as a copy recorded before the reopening would be); a temporary directory is removed,
and when nothing was placed the intent is dropped (a close still to file is written again by
the same pass). So nothing stays in the archive unrecorded, and nothing is written twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from connector.base import Sender
from connector.errors import Forbidden, NotFound
from escalations.archive import directory
from escalations.archive.record import ArchivedFile, ArchiveInput, build
from escalations.filenames import safe_filename
from escalations.models import ArchiveCopy, ArchiveIntent, Escalation, State
from escalations.people import People
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

NAME = "archive"
UNREADABLE = "archive.unreadable"
"""Meta key: escalation id → the close whose ticket could not be read (logged once)."""


def run(ctx: JobContext) -> JobResult:
    result = JobResult(NAME)
    people = People(ctx.adapter, ctx.binding, ctx.profile)
    directory.sweep_cleared(ctx.settings.archive_path)
    for intent in ctx.store.archive_intents():
        if ctx.stop.is_set():
            return result
        result.add(finish_interrupted(ctx, intent))
    for esc in ctx.store.escalations_in(State.CLOSED):
        if ctx.stop.is_set():
            break
        if esc.confirmed_at is None or esc.closed_at is None or esc.escalation_ticket_id is None:
            continue  # abandoned, or ended when its ticket was deleted: nothing was confirmed
        try:
            archive_one(ctx, people, esc)
        except (Forbidden, NotFound) as exc:
            _unreadable(ctx, esc, exc)
            result.add("archives_unreadable")
            continue
        result.add("archived")
    return result


def archive_one(ctx: JobContext, people: People, esc: Escalation) -> ArchiveCopy:
    ticket_id, closed_at = esc.escalation_ticket_id, esc.closed_at
    if ticket_id is None or closed_at is None:
        raise ValueError(f"escalation {esc.key} is not a closed one with a ticket")
    store = ctx.store
    ticket = ctx.adapter.get_ticket(ticket_id)
    articles = ctx.adapter.list_articles(ticket_id)
    # the agents' articles on the original too (calls, replies, notes); its customer emails
    # are in the escalation ticket already, as copies
    try:
        on_original = [
            a
            for a in ctx.adapter.list_articles(esc.original_ticket_id)
            if a.sender is not Sender.CUSTOMER
        ]
    except (Forbidden, NotFound):
        on_original = []  # out of reach or deleted: the escalation ticket is the record
    articles = sorted([*articles, *on_original], key=lambda a: (a.created_at, a.id))
    files: dict[str, bytes] = {}
    kept: list[ArchivedFile] = []
    limit = ctx.binding.limits.attachment_max_bytes
    for article in articles:
        for ref in article.attachments:
            name = f"{article.id}-{safe_filename(ref.filename)}"
            data = ctx.adapter.fetch_attachment(ref, max_bytes=max(limit, ref.size))
            files[f"attachments/{name}"] = data
            kept.append(ArchivedFile(article.id, name, ref.filename, ref.content_type, len(data)))
    now = ctx.clock.now()
    profile = ctx.profile
    owner_id = ticket.owner_id or esc.owner_id
    reason = profile.reason(esc.reason).label if esc.reason in profile.reason_keys else esc.reason
    segment = profile.segments.get(esc.segment)
    record = build(
        ArchiveInput(
            escalation=esc,
            customer=people.name(esc.customer_id),
            owner_id=owner_id,
            owner=people.name(owner_id) if owner_id else "unassigned",
            reason_label=reason or "(not given)",
            segment_label=segment.label if segment is not None else esc.segment,
            rfo=ctx.binding.rfo_of(ticket),
            articles=articles,
            files=kept,
            levels=store.level_changes(esc.id),
            carrier_contacts=store.carrier_contacts(esc.id),
            duties=store.duties(esc.id),
            parkings=store.parking_periods(esc.id),
            archived_at=now,
        )
    )
    files["record.json"] = json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n"
    # imported here: the PDF library costs more to import than a pass that files nothing
    from escalations.archive.pdf import render

    files["escalation.pdf"] = render(
        record,
        font_dir=ctx.settings.archive_font_dir,
        tz=ctx.profile.tz,
        process=ctx.profile.process.name,
    )
    name = directory.directory_name(esc.key, closed_at.strftime("%Y%m%dT%H%M%SZ"))
    intent = ArchiveIntent(
        escalation_id=esc.id,
        closed_at=closed_at,
        path=str(ctx.settings.archive_path / name),
        begun_at=now,
    )
    with store.transaction() as tx:
        store.begin_archive(tx, intent)
    ctx.faults.point("archive.begun")
    written = directory.write(ctx.settings.archive_path, name, files, step=ctx.faults.point)
    ctx.faults.point("archive.placed")
    copy = ArchiveCopy(
        escalation_id=esc.id,
        closed_at=closed_at,
        path=str(written.path),
        manifest_sha256=written.manifest_sha256,
        archived_at=now,
    )
    with store.transaction() as tx:
        ctx.lifecycle.archived(tx, esc, copy)
    ctx.faults.point("archive.committed")
    return copy


def finish_interrupted(ctx: JobContext, intent: ArchiveIntent) -> str:
    """Finish a run that recorded ``intent`` and did not record its copy (logged once, as
    ``archive.interrupted``); the count it adds to the job's result."""
    store = ctx.store
    path = Path(intent.path)
    directory.clear_incoming(path.parent, path.name)  # before looking: see clear_incoming
    esc = store.get_escalation(intent.escalation_id)
    current = (
        esc is not None
        and esc.state is State.CLOSED
        and esc.closed_at == intent.closed_at
        and esc.confirmed_at is not None
    )
    if not path.exists():
        if current:
            _interrupted(intent, "nothing was placed; the close is written again")
            return "archives_to_write_again"  # by the loop over closed escalations
        with store.transaction() as tx:
            store.drop_archive_intent(tx, intent.escalation_id, intent.closed_at)
        _interrupted(intent, "nothing was placed, and the escalation was reopened: dropped")
        return "archive_intents_dropped"
    try:
        written = directory.adopt(path)
    except directory.ArchiveDamaged as exc:
        log.warning("archive.damaged esc_id=%s: %s", intent.escalation_id, exc)
        return "archives_damaged"
    copy = ArchiveCopy(
        escalation_id=intent.escalation_id,
        closed_at=intent.closed_at,
        path=str(written.path),
        manifest_sha256=written.manifest_sha256,
        archived_at=intent.begun_at,
    )
    with store.transaction() as tx:
        if esc is not None and current:
            ctx.lifecycle.archived(tx, esc, copy)
            done = "the directory in place is recorded"
        else:
            store.record_archive(tx, copy)
            done = "the directory in place is recorded; the escalation was reopened meanwhile"
    _interrupted(intent, done)
    ctx.faults.point("archive.committed")
    return "archives_finished"


def _interrupted(intent: ArchiveIntent, done: str) -> None:
    log.info(
        "archive.interrupted esc_id=%s closed_at=%s path=%s: %s",
        intent.escalation_id,
        intent.closed_at.isoformat(),
        intent.path,
        done,
    )


def _unreadable(ctx: JobContext, esc: Escalation, exc: Exception) -> None:
    seen = dict(ctx.store.get_meta(UNREADABLE) or {})
    closed = esc.closed_at.isoformat() if esc.closed_at else ""
    if seen.get(str(esc.id)) == closed:
        return
    log.warning(
        "archive.unreadable esc=%s ticket=%s error=%s: not archived yet",
        esc.key,
        esc.escalation_ticket_id,
        exc,
    )
    with ctx.store.transaction() as tx:
        ctx.store.set_meta(tx, UNREADABLE, {**seen, str(esc.id): closed})
