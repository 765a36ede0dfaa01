"""``escalations provision``: create or update in Zammad everything agents click and the worker
relies on, from the mappings, in one idempotent command.

The plan is the Zammad binding's (``escalations.bindings.zammad.provision``); this module reads
Zammad's admin lists, carries the plan out phase by phase (attributes and Zammad's migrations
step; then the state, group, tags, placeholder customer and webhook; then what names those by
id), and prints one line per object that is not already as wanted, then a summary. With
``--dry-run`` nothing is written: later phases are planned against what exists now, with
stand-ins for the ids of objects not yet created.

It uses the admin token (``ESCALATIONS_HELPDESK_ADMIN_TOKEN`` or the ``helpdesk-admin-token``
credential), needed only here: the worker's own token keeps the agent permissions.

On osTicket (``ESCALATIONS_HELPDESK=osticket``) nothing can be created through its API or the
plugin: ``provision_osticket`` prints the admin's checklist instead and writes nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from connector.errors import Forbidden, Unauthorized
from connector.http import HttpClient
from connector.redaction import SECRETS
from connector.zammad import ZammadAdmin
from connector.zammad.admin import PENDING_FLAGS
from escalations.bindings.zammad import provision as pv
from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.bindings.zammad.provision_spec import PROVISION_FILE, ProvisionSpec
from escalations.clock import Clock, SystemClock
from escalations.errors import ConfigError
from escalations.mappings import Mappings, load_mapping_file, load_mappings
from escalations.settings import Settings

log = logging.getLogger(__name__)


def build_admin(settings: Settings, clock: Clock) -> ZammadAdmin:
    """The admin client, or a ``ConfigError`` naming the setting that is missing."""
    token = settings.helpdesk_admin_token
    if not settings.helpdesk_configured:
        raise ConfigError("ESCALATIONS_HELPDESK_URL: not set (provision needs the helpdesk)")
    if token is None or not token.get_secret_value():
        raise ConfigError(
            "ESCALATIONS_HELPDESK_ADMIN_TOKEN: missing (provision needs an admin token: set it "
            "or the helpdesk-admin-token credential; the worker's own token stays an agent's)"
        )
    return _admin_client(settings, clock, token.get_secret_value())


def build_reader(settings: Settings, clock: Clock) -> ZammadAdmin:
    """The admin lists as the worker's own (agent) token reads them: for ``check --live``
    without the admin token."""
    token = settings.helpdesk_token
    return _admin_client(settings, clock, token.get_secret_value() if token else "")


def _admin_client(settings: Settings, clock: Clock, secret: str) -> ZammadAdmin:
    """A client with the worker's HTTP policy and session (``ESCALATIONS_HTTPS_PROXY``)."""
    from escalations.app.preflight import session
    from escalations.app.wiring import http_policy

    SECRETS.add(secret)
    headers = {"Authorization": f"Token token={secret}"}
    client = HttpClient(
        settings.helpdesk_url, headers, http_policy(settings), clock, session=session(settings)
    )
    return ZammadAdmin(client)


def read_snapshot(admin: ZammadAdmin, *, webhook: bool = True) -> pv.Snapshot:
    kinds = [k for k in pv.ADMIN_LISTS if webhook or k not in pv.WEBHOOK_LISTS]
    return pv.Snapshot({kind: admin.list(kind) for kind in kinds})


@dataclass
class Outcome:
    counts: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def add(self, steps: list[pv.Step], *, dry_run: bool) -> None:
        for step in steps:
            self.counts[step.action.value] += 1
            if dry_run or step.action is not pv.Action.UNCHANGED:  # a plan shows every object
                self.lines.append(("would " if dry_run and step.writes else "") + step.line())


class Provisioner:
    def __init__(
        self,
        admin: ZammadAdmin,
        mappings: Mappings,
        spec: ProvisionSpec,
        carrier_text: str,
        *,
        webhook_url: str | None,
        webhook_secret: str | None,
        dry_run: bool,
        force: bool,
        say: Callable[[str], None],
    ) -> None:
        fieldmap = mappings.helpdesk
        if not isinstance(fieldmap, ZammadFieldMap):
            raise ConfigError("provision is built for Zammad (ESCALATIONS_HELPDESK=zammad)")
        self.admin = admin
        self.fieldmap = fieldmap
        self.profile = mappings.profile
        self.spec = spec
        self.carrier_text = carrier_text
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.dry_run = dry_run
        self.force = force
        self.say = say
        self.outcome = Outcome()

    def run(self) -> Outcome:
        self.say("provision: reading Zammad's admin lists …")
        snap = read_snapshot(self.admin, webhook=bool(self.webhook_url))
        self.say("provision: ticket attributes …")
        wanted_attributes = pv.attributes(self.fieldmap, self.profile, self.spec)
        attributes = self._carry(wanted_attributes, snap)
        names = {w.name for w in wanted_attributes}
        # staged by this run, or left staged by an earlier one whose migrations step failed
        staged = [
            a
            for a in snap.of("object_manager_attributes")
            if a.get("name") in names and any(a.get(flag) for flag in PENDING_FLAGS)
        ]
        if (any(s.writes for s in attributes) or staged) and not self.dry_run:
            self.say("provision: running Zammad's migrations for the ticket attributes …")
            self.admin.execute_migrations()
        self.say("provision: parked state, group, tags, placeholder customer, webhook …")
        self._carry(
            pv.basics(
                self.fieldmap,
                self.profile,
                self.spec,
                snap,
                webhook_url=self.webhook_url,
                webhook_secret=self.webhook_secret,
            ),
            snap,
        )
        self._customer()
        if not self.dry_run:
            snap = read_snapshot(self.admin, webhook=bool(self.webhook_url))  # phase 2's ids
        self.say("provision: macros, overviews, text modules, trigger …")
        later = [
            *pv.macros(self.fieldmap, self.profile, self.spec, snap),
            *pv.overviews(self.fieldmap, self.spec, snap),
            *pv.text_modules(self.spec, self.carrier_text),
        ]
        if self.webhook_url:
            later.append(pv.trigger(self.fieldmap, self.spec, snap))
        self._roles_exist(snap)
        self._carry(later, snap)
        return self.outcome

    def _roles_exist(self, snap: pv.Snapshot) -> None:
        """Provision creates no roles: a role the overviews name must exist."""
        missing = [r for r in self.spec.overviews.roles if snap.find("roles", r) is None]
        if missing:
            raise ConfigError(
                f"{PROVISION_FILE}: overviews.roles: role(s) {', '.join(map(repr, missing))} "
                "not found in Zammad (provision creates no roles; name existing ones)"
            )

    def _carry(self, wanted: list[pv.Wanted], snap: pv.Snapshot) -> list[pv.Step]:
        steps = pv.plan(wanted, snap, note=self.spec.note, force=self.force)
        if self.dry_run:
            self.outcome.add(steps, dry_run=True)
            return steps
        for step in steps:  # each counted once done: a failure shows what was written
            if step.action is pv.Action.CREATE:
                self.admin.create(step.kind, step.body)
            elif step.writes and step.object_id is not None:
                self.admin.update(step.kind, step.object_id, step.body)
            self.outcome.add([step], dry_run=False)
        return steps

    def _customer(self) -> None:
        wanted = pv.placeholder_customer(self.fieldmap)
        if wanted is None:
            return
        address = str(wanted["email"])
        if self.admin.find_user(address) is not None:
            self.outcome.counts[pv.Action.UNCHANGED.value] += 1
            if self.dry_run:
                self.outcome.lines.append(f"unchanged users {address!r} (placeholder customer)")
            return
        self.outcome.counts[pv.Action.CREATE.value] += 1
        self.outcome.lines.append(
            ("would " if self.dry_run else "")
            + f"create    users {address!r} (placeholder customer)"
        )
        if not self.dry_run:
            self.admin.create_user(wanted)


def summary(outcome: Outcome, *, dry_run: bool) -> str:
    c = outcome.counts
    created, updated = c[pv.Action.CREATE.value], c[pv.Action.UPDATE.value]
    forced, kept = c[pv.Action.FORCED.value], c[pv.Action.HAND_EDITED.value]
    verb = "would change" if dry_run else "changed"
    text = (
        f"provision: {verb} {created + updated + forced} "
        f"({created} created, {updated} updated, {forced} overwritten), "
        f"{c[pv.Action.UNCHANGED.value]} unchanged"
    )
    if kept:
        text += f", {kept} changed by hand and kept (--force overwrites them)"
    if not (created or updated or forced):
        text += "; nothing to do" if not dry_run else "; nothing would change"
    return text


def command(args: argparse.Namespace) -> int:
    """``escalations provision``: settings from the environment (and ``--env-file``)."""
    from escalations.app.logs import configure_logging
    from escalations.settings import load_settings

    settings = load_settings(args.env_file)
    configure_logging(settings.log_level, settings.log_format)
    return provision(args, settings)


def provision(args: argparse.Namespace, settings: Settings, *, clock: Clock | None = None) -> int:
    """The command: exit 0 when Zammad holds what the mappings need (objects changed by
    hand and kept are reported, not failures), 78 for a setting or mapping to fix. On
    osTicket: the admin's checklist (``provision_osticket``), 78 while a step remains."""
    from escalations.carrier import carrier_template

    if settings.helpdesk == "osticket":
        from escalations.app.provision_osticket import provision_osticket

        return provision_osticket(args, settings, clock=clock)

    mappings = load_mappings(settings.mappings_dir)
    spec = load_mapping_file(mappings.directory / PROVISION_FILE, ProvisionSpec)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if args.webhook_url and not secret:
        raise ConfigError(
            "ESCALATIONS_WEBHOOK_SECRET: missing (--webhook-url needs the secret Zammad signs "
            "its calls with; set it or the webhook-secret credential)"
        )
    if secret:
        SECRETS.add(secret)
    admin = build_admin(settings, clock or SystemClock())

    def say(line: str) -> None:
        print(line, file=sys.stderr)  # noqa: T201

    provisioner = Provisioner(
        admin,
        mappings,
        spec,
        carrier_template(mappings),
        webhook_url=args.webhook_url,
        webhook_secret=secret,
        dry_run=args.dry_run,
        force=args.force,
        say=say,
    )
    try:
        outcome = provisioner.run()
    except (Unauthorized, Forbidden) as exc:
        _print_lines(provisioner.outcome)  # what was written before the refusal
        raise _admin_error(exc) from None
    except BaseException:
        _print_lines(provisioner.outcome)  # what was written before the failure
        raise
    _print_lines(outcome)
    print(summary(outcome, dry_run=args.dry_run))  # noqa: T201
    return 0


def _print_lines(outcome: Outcome) -> None:
    for line in outcome.lines:
        print(line)  # noqa: T201


def _admin_error(exc: Unauthorized | Forbidden) -> ConfigError:
    """The one line for a refused or under-privileged admin token."""
    if isinstance(exc, Unauthorized):
        return ConfigError(
            f"ESCALATIONS_HELPDESK_ADMIN_TOKEN: the helpdesk refused the admin token "
            f"({exc.status}): check it or the helpdesk-admin-token credential"
        )
    return ConfigError(
        f"ESCALATIONS_HELPDESK_ADMIN_TOKEN: the admin token may not do this ({exc}); "
        "it needs the admin permissions listed in docs/admins.md"
    )


def provision_sandbox(url: str, admin_token: str, clock: Clock, mappings_dir: Path) -> Outcome:
    """Provision the sandbox at ``url`` as an admin would, with the same code (``escalations
    sandbox`` and ``escalations demo`` start it provisioned). ``force``: the demo data's own
    attributes are brought in line with the mappings."""
    from escalations.carrier import carrier_template

    settings = Settings(
        _env_file=None,
        helpdesk_url=url,
        helpdesk_admin_token=SecretStr(admin_token),
        mappings_dir=mappings_dir,
        http_requests_per_minute=6000,
    )
    mappings = load_mappings(mappings_dir)
    spec = load_mapping_file(mappings.directory / PROVISION_FILE, ProvisionSpec)
    return Provisioner(
        build_admin(settings, clock),
        mappings,
        spec,
        carrier_template(mappings),
        webhook_url=None,
        webhook_secret=None,
        dry_run=False,
        force=True,
        say=lambda line: log.debug("sandbox.provision %s", line),
    ).run()
