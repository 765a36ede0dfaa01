"""The object manager (``object_manager_attributes_controller.rb``,
``object_manager/attribute.rb``; ``reference/zammad-api.md`` §10), behind ``admin.object``.

* ``POST`` creates an attribute **staged**: ``to_create``/``to_migrate``, no column yet, so
  ticket writes to it are dropped silently and it is not rendered on tickets (the rules skip
  every attribute that is not a real column). An existing ``object`` + ``name`` → 422
  "Object already exists!" (``humanize_error`` of "already exists").
* ``PUT /object_manager_attributes/{id}`` finds the attribute by the ``object`` and ``name``
  **in the body**; the id in the URL is not read (no such attribute: 422 "does not exist").
  A change of name, display, data type, position or active, or of ``data_option``, is
  staged: ``to_config`` with the new options in ``data_option_new`` (``to_migrate`` too when
  ``maxlength`` changes); display, position, active and screens change at once, the options
  only when migrations run. ``data_type`` may change only within select, multiselect,
  tree_select, input and checkbox.
* ``POST …_execute_migrations`` makes the columns (existing tickets get the default of an
  integer, boolean, date or datetime column, ``null`` otherwise), applies staged options
  (keeping ``historical_options`` for selects) and drops attributes marked ``to_delete``;
  ``POST …_discard_changes`` throws staged work away.
* The controller fills ``data_option`` in before saving: ``default`` (``""`` for input,
  select and tree_select, ``null`` otherwise), ``null: true``, ``options: {}``,
  ``relation: ""``, and for selects and checkboxes ``nulloption: true`` and ``maxlength:
  255``; so what a GET answers is not what was sent.
* Names are lowercased; only ``[a-z0-9_]`` with a letter, not ending in ``_id``/``_ids``,
  not a reserved word, not an existing column.

The demo's seeded attributes (``sandbox/demo.json``) are migrated already."""

from __future__ import annotations

import copy
import re
from typing import Any

from sandbox.actor import Actor
from sandbox.api import Request, Response, Route, json_response
from sandbox.records import ApiError, ObjectAttribute, cast_bool, forbidden, not_found
from sandbox.state import TICKET_COLUMNS, SandboxState, as_int
from sandbox.values import default_value
from sandbox.views import attribute_json

DATA_TYPES = frozenset(
    {
        "input", "textarea", "richtext", "integer", "boolean", "select", "multiselect",
        "tree_select", "multi_tree_select", "datetime", "date", "tag", "checkbox",
        "user_autocompletion", "autocompletion_ajax", "autocompletion_ajax_customer_organization",
        "autocompletion_ajax_external_data_source", "user_permission", "group_permissions",
        "active",
    }
)  # fmt: skip
CHANGEABLE_DATA_TYPES = frozenset({"select", "multiselect", "tree_select", "input", "checkbox"})
SELECT_TYPES = frozenset({"select", "multiselect", "tree_select", "multi_tree_select", "checkbox"})
DEFAULTED_COLUMN_TYPES = frozenset({"integer", "boolean", "datetime", "date"})
RESERVED_WORDS = frozenset(
    {
        "destroy", "true", "false", "integer", "select", "drop", "create", "alter", "index",
        "table", "varchar", "blob", "date", "datetime", "timestamp", "url", "icon", "initials",
        "avatar", "permission", "validate", "subscribe", "unsubscribe", "translate", "search",
        "_type", "_doc", "_id", "id", "action", "scope", "constructor",
    }
)  # fmt: skip
OBJECT_COLUMNS: dict[str, frozenset[str]] = {
    "Ticket": frozenset(TICKET_COLUMNS) | {"preferences", "type", "time_unit", "article"},
    "User": frozenset(
        {"login", "firstname", "lastname", "email", "image", "image_source", "web", "password",
         "phone", "fax", "mobile", "department", "street", "zip", "city", "country", "address",
         "vip", "verified", "active", "note", "last_login", "source", "login_failed",
         "out_of_office", "preferences", "organization_id", "created_at", "updated_at"}
    ),
    "Organization": frozenset(
        {"name", "shared", "domain", "domain_assignment", "active", "vip", "note",
         "created_at", "updated_at"}
    ),
    "Group": frozenset(
        {"name", "name_last", "parent_id", "assignment_timeout", "follow_up_possible",
         "follow_up_assignment", "email_address_id", "signature_id", "active", "note",
         "created_at", "updated_at"}
    ),
}  # fmt: skip
MAX_INT = 2147483647


def _invalid(*messages: str) -> ApiError:
    """A ``RecordInvalid`` re-raised as ``UnprocessableEntity``: rendered up to the comma."""
    return ApiError(422, ", ".join(messages).split(",", 1)[0])


class ObjectManager:
    """The ``object_manager_attributes*`` routes over one ``SandboxState``."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            ("GET", r"/object_manager_attributes/(\d+)", self.show),
            ("POST", "/object_manager_attributes", self.create),
            ("PUT", r"/object_manager_attributes/(\d+)", self.update),
            ("POST", "/object_manager_attributes_execute_migrations", self.execute_migrations),
            ("POST", "/object_manager_attributes_discard_changes", self.discard_changes),
        ]

    def _need_admin(self, actor: Actor) -> None:
        if not actor.has(self.state, "admin.object"):
            raise forbidden()

    def _find(self, obj: object, name: str) -> ObjectAttribute | None:
        return next(
            (a for a in self.state.db.attributes.values() if a.object == obj and a.name == name),
            None,
        )

    # -- handlers -----------------------------------------------------------------------------

    def show(self, actor: Actor, req: Request, attr_id: str) -> Response:
        self._need_admin(actor)
        attr = self.state.db.attributes.get(int(attr_id))
        if attr is None:
            raise not_found("ObjectManager::Attribute", attr_id)
        return json_response(200, attribute_json(attr))

    def create(self, actor: Actor, req: Request) -> Response:
        self._need_admin(actor)
        st = self.state
        params = permitted_params(req.params)
        obj, name = params.get("object"), _name(params)
        if self._find(obj, name) is not None:
            raise ApiError(422, "Object already exists!")
        if obj not in OBJECT_COLUMNS:
            raise ApiError(422, f"uninitialized constant {obj}", kind="detail")
        data_type = str(params["data_type"])
        data_option = base_options(data_type, params["data_option"])
        check_name(obj, name, new=True)
        check_record(data_type, data_option)
        now = st.now()
        attr = ObjectAttribute(
            st.next_id("attributes"),
            str(obj),
            name,
            str(params.get("display") or name),
            data_type,
            data_option,
            now,
            now,
            editable=True,
            active=cast_bool(params.get("active")) is not False,
            position=as_int(params.get("position")) or 1550,
            screens=dict(params.get("screens") or {}),
            to_create=True,
            to_migrate=True,
            created_by_id=actor.user.id,
            updated_by_id=actor.user.id,
        )
        st.db.attributes[attr.id] = attr
        return json_response(201, attribute_json(attr))

    def update(self, actor: Actor, req: Request, _url_id: str) -> Response:
        """``ObjectManager::Attribute.add`` on an existing record; the URL id is ignored."""
        self._need_admin(actor)
        params = permitted_params(req.params)
        name = _name(params)
        attr = self._find(params.get("object"), name)
        if attr is None:
            raise ApiError(422, "does not exist")
        keys = ("display", "data_type", "active", "screens", "position")
        given: dict[str, Any] = {k: params[k] for k in keys if k in params}
        data_option = params["data_option"]
        new = copy.deepcopy(attr)
        current: dict[str, Any] = {
            "name": attr.name, "display": attr.display, "data_type": attr.data_type,
            "position": attr.position, "active": attr.active,
        }  # fmt: skip
        wanted: dict[str, Any] = {"name": name, **given}
        if "position" in wanted:
            wanted["position"] = as_int(wanted["position"])
        if "active" in wanted:
            wanted["active"] = cast_bool(wanted["active"])
        if any(current[key] != wanted.get(key) for key in current):
            new.data_option_new = copy.deepcopy(data_option)
            new.to_config = True
        if attr.data_option != data_option:
            old_max, new_max = attr.data_option.get("maxlength"), data_option.get("maxlength")
            if old_max is not None and new_max is not None and str(old_max) != str(new_max):
                new.to_migrate = True
            new.data_option_new = copy.deepcopy(data_option)
            new.to_config = True
        else:
            new.data_option = copy.deepcopy(data_option)
        for key, value in wanted.items():
            if key == "name":
                continue
            if key == "position":
                new.position = value if value is not None else attr.position
            elif key == "active":
                new.active = bool(value)
            elif key == "screens":
                new.screens = dict(value or {})
            else:
                setattr(new, key, str(value))
        if not attr.editable:
            raise _invalid("Name Attribute not editable!")
        check_name(new.object, new.name, new=False)
        local = new.data_option_new if new.to_config else new.data_option
        local.update(base_options(new.data_type, local))
        if new.data_type != attr.data_type and not (
            {attr.data_type, new.data_type} <= CHANGEABLE_DATA_TYPES
        ):
            raise _invalid(
                "Data type can't be altered after creation "
                "(delete the attribute and create another with the desired value)"
            )
        check_record(new.data_type, local)
        new.updated_at = self.state.now()
        new.updated_by_id = actor.user.id
        self.state.db.attributes[attr.id] = new
        return json_response(200, attribute_json(new))

    def execute_migrations(self, actor: Actor, req: Request) -> Response:
        self._need_admin(actor)
        st = self.state
        for attr in sorted(st.db.attributes.values(), key=lambda a: a.id):
            if not (attr.to_create or attr.to_migrate or attr.to_delete or attr.to_config):
                continue
            attr.updated_at = st.now()
            if attr.to_delete:
                del st.db.attributes[attr.id]
                if attr.object == "Ticket":
                    for ticket in st.db.tickets.values():
                        ticket.custom.pop(attr.name, None)
                continue
            if attr.to_config:
                if attr.data_type == "select" and attr.data_option.get("options"):
                    history = dict(attr.data_option.get("historical_options") or {})
                    history.update(attr.data_option.get("options") or {})
                    history.update(attr.data_option_new.get("options") or {})
                    attr.data_option_new["historical_options"] = history
                attr.data_option = attr.data_option_new
                attr.data_option_new = {}
                attr.to_config = False
                if not (attr.to_create or attr.to_migrate):
                    continue
            if attr.data_type == "select" and isinstance(attr.data_option.get("options"), dict):
                attr.data_option["historical_options"] = dict(attr.data_option["options"])
            if attr.to_create and attr.object == "Ticket":
                initial = default_value(attr) if attr.data_type in DEFAULTED_COLUMN_TYPES else None
                for ticket in st.db.tickets.values():
                    ticket.custom.setdefault(attr.name, initial)
            attr.to_create = attr.to_migrate = False
        return json_response(200, {})

    def discard_changes(self, actor: Actor, req: Request) -> Response:
        self._need_admin(actor)
        st = self.state
        for attr in list(st.db.attributes.values()):
            if attr.to_create:
                del st.db.attributes[attr.id]
            elif attr.to_delete or attr.to_config:
                attr.to_migrate = attr.to_delete = attr.to_config = False
                attr.data_option_new = {}
        return json_response(200, {})


# -- rules --------------------------------------------------------------------------------------


def permitted_params(raw: dict[str, Any]) -> dict[str, Any]:
    """The controller's ``permitted_params``: boolean defaults cast, ``data_option`` filled."""
    params = copy.deepcopy(raw)
    data_type = params.get("data_type")
    if not isinstance(data_type, str):
        raise ApiError(500, "undefined method 'match?' for nil", kind="detail")
    option = params.get("data_option")
    if isinstance(option, dict):
        if (
            data_type == "boolean"
            and option.get("options")
            and option.get("default")
            in (
                "true",
                "false",
            )
        ):
            option["default"] = option["default"] == "true"
        if "default" not in option:
            option["default"] = "" if data_type in ("input", "select", "tree_select") else None
        if option.get("null") is None:
            option["null"] = True
        if not isinstance(option.get("options"), dict | list):
            option["options"] = {}
        if not isinstance(option.get("relation"), str):
            option["relation"] = ""
    else:
        option = {"default": "", "options": {}, "relation": "", "null": True}
    params["data_option"] = option
    return params


def base_options(data_type: str, option: dict[str, Any]) -> dict[str, Any]:
    """``set_base_options`` (before validation): ``null``, and for selects ``nulloption``
    and ``maxlength``."""
    out = dict(option)
    if out.get("null") is None:
        out["null"] = True
    if data_type in SELECT_TYPES:
        if out.get("nulloption") is None:
            out["nulloption"] = True
        out["maxlength"] = out.get("maxlength") or 255
    return out


def _name(params: dict[str, Any]) -> str:
    name = params.get("name")
    if not isinstance(name, str):
        raise ApiError(422, "undefined method 'downcase!' for nil", kind="detail")
    return name.lower()


def check_name(obj: str, name: str, *, new: bool) -> None:
    """``check_name``: every failure is a validation error on ``name``."""
    problems = []
    if re.search(r".+?_(id|ids)$", name):
        problems.append("Name can't get used because *_id and *_ids are not allowed")
    if re.search(r"\s", name):
        problems.append("Name spaces are not allowed")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        problems.append("Name Only letters from a-z because numbers from 0-9 and _ are allowed")
    if not re.search(r"[a-z]", name):
        problems.append("Name At least one letters is needed")
    if name in RESERVED_WORDS or (obj == "Ticket" and name == "article"):
        problems.append(f"Name {name} is a reserved word")
    elif new and name in OBJECT_COLUMNS.get(obj, frozenset()):
        problems.append(f"Name {name} already exists!")
    if problems:
        raise _invalid(*problems)


def check_record(data_type: str, option: dict[str, Any]) -> None:
    """The model's validations: the data type, and ``data_option`` for that type."""
    if data_type not in DATA_TYPES:
        raise _invalid("Data type is not included in the list")
    failed = [message for bad, message in _option_checks(data_type, option) if bad]
    if failed:
        raise _invalid(*(f"Data option {m}" for m in failed))


def _integer(value: object) -> bool:
    return re.fullmatch(r"-?\d+", str(value)) is not None if value is not None else False


def _option_checks(data_type: str, option: dict[str, Any]) -> list[tuple[bool, str]]:
    if data_type == "input":
        return [
            (
                option.get("type") not in ("text", "password", "tel", "fax", "email", "url"),
                "must have one of text/password/tel/fax/email/url for :type",
            ),
            (not _integer(option.get("maxlength")), "must have integer for :maxlength"),
        ]
    if data_type in ("textarea", "richtext"):
        return [(not _integer(option.get("maxlength")), "must have integer for :maxlength")]
    if data_type == "integer":
        low, high = option.get("min"), option.get("max")
        checks = [
            (not _integer(low), "must have integer for :min"),
            (not _integer(high), "must have integer for :max"),
        ]
        if _integer(low) and _integer(high):
            lo, hi = int(str(low)), int(str(high))
            checks += [
                (not -MAX_INT <= lo <= MAX_INT, "must be within the integer range for :min"),
                (not -MAX_INT <= hi <= MAX_INT, "must be within the integer range for :max"),
                (lo > hi, "must have :min lower than or equal to :max"),
            ]
        return checks
    if data_type in SELECT_TYPES:
        return [
            ("default" not in option, "must have value for :default"),
            (
                option.get("options") is None and option.get("relation") is None,
                "must have non-nil value for either :options or :relation",
            ),
        ]
    if data_type == "boolean":
        return [
            ("default" not in option, "must have boolean/undefined value for :default"),
            (option.get("options") is None, "must have non-nil value for :options"),
        ]
    if data_type == "datetime":
        return [
            (option.get("future") is None, "must have boolean value for :future"),
            (option.get("past") is None, "must have boolean value for :past"),
        ]
    return []
