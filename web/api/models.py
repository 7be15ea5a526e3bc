"""The API's request and response models: what a client may send and what it gets back.

Requests (bodies and query strings) are validated through these models (see
`web.api.operations`); the OpenAPI document is generated from them (`web.api.openapi`), so the
two cannot drift apart. Responses are built by `intake.serialize` (dicts, for speed on the list
hot path); their models forbid unknown keys, and the schema tests check every response against
them.

Allowed values that come from the configuration (category and department codes) are marked with
`OneOf(configured=...)`: checked against the validation context at request time and listed in
the document from the same configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from intake.callbacks import CALLBACK_STATUSES
from intake.constants import CHANNELS, LANGUAGES, PRIORITIES, STATUSES
from intake.models import INCIDENT_KINDS, INCIDENT_STATUSES, INCIDENT_TEXT_LANGUAGES
from intake.phones import normalize_email
from web.filters import SLA_STATES, SORTS

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_VALUES = 20
MAX_CONTACT_POINTS = 10
EMAIL_PATTERN = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
NON_BLANK = r"\S"
# Where the document builder puts a configured list of values (see `OneOf.configured`).
CONFIGURED_CHOICES = "x-hotline-configured"


# --- field types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneOf:
    """A string that must be one of `values`, or of the codes the configuration lists under
    `configured` (read from the validation context: {"choices": {name: codes}})."""

    values: tuple[str, ...] = ()
    configured: str | None = None

    def allowed(self, info: ValidationInfo) -> tuple[str, ...]:
        if self.configured is None:
            return self.values
        choices = (info.context or {}).get("choices", {})
        return tuple(choices.get(self.configured, ()))

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def check(value: str, info: ValidationInfo) -> str:
            allowed = self.allowed(info)
            if value not in allowed:
                raise PydanticCustomError(
                    "not_one_of",
                    "must be one of {allowed}",
                    {"allowed": ", ".join(allowed)},
                )
            return value

        return core_schema.with_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if self.configured is None:
            json_schema["enum"] = list(self.values)
        else:
            json_schema[CONFIGURED_CHOICES] = self.configured
        return json_schema


@dataclass(frozen=True)
class Text:
    """A string with NULs dropped and spaces trimmed, then checked: at most `max_length`
    characters, not blank if `required`, no line break if `single_line` (a subject, an address,
    a name: what may end up in a mail header)."""

    max_length: int
    required: bool = False
    single_line: bool = False

    def clean(self, value: str) -> str:
        value = value.replace("\x00", "").strip()
        if self.required and not value:
            raise PydanticCustomError("blank", "must not be empty")
        if len(value) > self.max_length:
            raise PydanticCustomError(
                "text_too_long", "is longer than {max} characters", {"max": self.max_length}
            )
        if self.single_line and LINE_BREAKS.search(value):
            raise PydanticCustomError("single_line", "must be one line (no CR or LF)")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.clean, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["maxLength"] = self.max_length
        if self.required:
            json_schema["pattern"] = NON_BLANK
        return json_schema


def _email(value: str) -> str:
    email = normalize_email(value)
    if email is None or not EMAIL_PATTERN.match(email) or len(email) > 254:
        raise PydanticCustomError("email", "'{value}' is not an email address", {"value": value})
    return email


def _search(value: str) -> str:
    return value.strip()[:100]


def _strict_bool(value: Any) -> Any:
    """Only `true` and `false`: a query string's `1`, `yes` or `on` would be guesses."""
    if value == "true":
        return True
    if value == "false":
        return False
    raise PydanticCustomError("bool", "must be true or false")


def repeatable(description: str) -> Any:
    """A parameter given once per value (`?x=a&x=b`)."""
    return Field(
        max_length=MAX_VALUES, description=description + " Repeat the parameter for several values."
    )


Email = Annotated[
    str,
    Text(254, single_line=True),
    AfterValidator(_email),
    Field(json_schema_extra={"pattern": EMAIL_PATTERN.pattern}),
]
QueryBool = Annotated[bool, BeforeValidator(_strict_bool)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Search = Annotated[str, AfterValidator(_search)]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[
    str,
    Field(
        description="Opaque cursor from the previous page's `next_cursor`; a cursor of another "
        "list is a 400."
    ),
]
Status = Annotated[str, OneOf(STATUSES)]
Priority = Annotated[str, OneOf(PRIORITIES)]
Category = Annotated[str, OneOf(configured="categories")]
DepartmentCode = Annotated[str, OneOf(configured="departments")]


class Request(BaseModel):
    """A body or query string: unknown fields are refused, strings are not coerced from numbers."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


# --- request bodies ---------------------------------------------------------------------------


class TicketUpdate(Request):
    """Every field is optional, but at least one must be given."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    status: Annotated[
        Status | None,
        Field(description="`resolved` needs a resolution_note (in this request or earlier)"),
    ] = None
    priority: Priority | None = None
    category: Annotated[Category | None, Field(description="category code")] = None
    department: Annotated[
        DepartmentCode | None, Field(description="department code; null removes it")
    ] = None
    assignee: Annotated[
        Annotated[str, Text(254, single_line=True)] | None,
        Field(description="email of an active operator; null unassigns"),
    ] = None
    resolution_note: Annotated[
        Annotated[str, Text(4000)] | None,
        Field(description="internal: staff only, never published"),
    ] = None
    public_note: Annotated[
        Annotated[str, Text(4000)] | None,
        Field(
            description="the answer to the resident: sent in the resolved message and "
            "published as Open311's status_notes"
        ),
    ] = None

    @model_validator(mode="after")
    def _something_to_change(self) -> TicketUpdate:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", "give at least one field to change")
        return self


class NewNote(Request):
    text: Annotated[str, Text(20000, required=True)]


class NewReply(Request):
    body: Annotated[str, Text(50000, required=True)]
    to: Annotated[Email | None, Field(description="defaults to the ticket's contact email")] = None
    subject: Annotated[str, Text(300, single_line=True)] | None = None


class NewResident(Request):
    name: Annotated[str, Text(200, required=True, single_line=True)]
    language: Annotated[
        Annotated[str, OneOf(LANGUAGES)] | None,
        Field(description="defaults to the centre's language"),
    ] = None
    building: Annotated[
        Annotated[str, Text(40, single_line=True)] | None,
        Field(description="code of an existing building; needs `unit`"),
    ] = None
    unit: Annotated[
        Annotated[str, Text(40, single_line=True)] | None, Field(description="unit label")
    ] = None
    phones: list[str] = Field(
        default_factory=list,
        max_length=MAX_CONTACT_POINTS,
        description="normalized to E.164 in the configured region",
    )
    emails: list[Email] = Field(default_factory=list, max_length=MAX_CONTACT_POINTS)
    notes: Annotated[str, Text(4000)] | None = None

    @model_validator(mode="after")
    def _building_needs_unit(self) -> NewResident:
        if bool(self.building) != bool(self.unit):
            raise PydanticCustomError("building_unit", "building and unit go together")
        return self


Word = Annotated[str, Text(100, required=True, single_line=True)]
IncidentText = Annotated[str, Text(2000, required=True)]
IncidentTexts = Annotated[
    dict[Annotated[str, OneOf(INCIDENT_TEXT_LANGUAGES)], IncidentText],
    Field(
        min_length=1,
        description="what residents read and callers hear, per language (zh-Hant, zh-Hans, en, "
        "yue)",
    ),
]


class NewIncident(Request):
    """An incident (or planned works) over buildings; `notify` tells every household."""

    buildings: Annotated[list[Word], Field(min_length=1, max_length=50, description="codes")]
    category: Category
    kind: Annotated[str, OneOf(INCIDENT_KINDS)] = "incident"
    texts: IncidentTexts
    keywords: Annotated[list[Word], Field(max_length=50)] = []
    units: Annotated[list[Word], Field(max_length=500)] = []
    starts_at: Annotated[AwareDatetime | None, Field(description="default: now")] = None
    expected_end_at: AwareDatetime | None = None
    notify: Annotated[bool, Field(strict=True, description="tell every household")] = False


class IncidentUpdate(Request):
    """New words or a new expected end; `notify` tells the households of the update."""

    texts: IncidentTexts | None = None
    expected_end_at: AwareDatetime | None = None
    notify: Annotated[bool, Field(strict=True, description="tell the households")] = False


class IncidentResolution(Request):
    note: Annotated[
        Annotated[str, Text(2000)] | None,
        Field(description="the all-clear's words (default: the incident's text)"),
    ] = None


# --- query strings ----------------------------------------------------------------------------


class TicketQuery(Request):
    status: Annotated[
        list[Annotated[str, OneOf((*STATUSES, "all"))]],
        repeatable("Default: the open statuses; `all` for every status."),
    ] = []
    channel: Annotated[
        list[Annotated[str, OneOf(CHANNELS)]], repeatable("Channel of first contact.")
    ] = []
    category: Annotated[list[Category], repeatable("Category code.")] = []
    department: Annotated[list[DepartmentCode], repeatable("Department code.")] = []
    priority: Annotated[list[Priority], repeatable("Priority.")] = []
    building: Annotated[list[NonEmpty], repeatable("Building code.")] = []
    sla: Annotated[
        Annotated[str, OneOf(SLA_STATES)] | None,
        Field(description="Open tickets whose SLA is at risk (due within 2 hours) or breached."),
    ] = None
    assignee: Annotated[str | None, Field(description="Email of the assigned operator.")] = None
    unassigned: Annotated[
        QueryBool | None, Field(description="Only tickets nobody is assigned to.")
    ] = None
    q: Annotated[
        Search | None,
        Field(description="Reference, subject, phone or email contains (first 100 characters)."),
    ] = None
    sort: Annotated[
        str,
        OneOf(SORTS),
        Field(description="urgency: priority then resolution due time; newest: creation time."),
    ] = "urgency"
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None

    @model_validator(mode="after")
    def _one_assignee(self) -> TicketQuery:
        if self.assignee and self.unassigned:
            raise PydanticCustomError("contradiction", "assignee and unassigned=true contradict")
        return self


class CallbackQuery(Request):
    status: Annotated[
        list[Annotated[str, OneOf(CALLBACK_STATUSES)]], repeatable("Callback status.")
    ] = []
    ticket: Annotated[list[NonEmpty], repeatable("Ticket reference.")] = []
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class ResidentQuery(Request):
    q: Annotated[Search | None, Field(description="Name, phone or email contains.")] = None
    building: Annotated[list[NonEmpty], repeatable("Building code.")] = []
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class IncidentQuery(Request):
    status: Annotated[
        list[Annotated[str, OneOf(INCIDENT_STATUSES)]], repeatable("Incident status.")
    ] = []
    limit: Limit = DEFAULT_LIMIT


# --- responses --------------------------------------------------------------------------------


class Response(BaseModel):
    """What `intake.serialize` returns: every key present, none other."""

    model_config = ConfigDict(extra="forbid")


Moment = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class ErrorDetail(Response):
    code: str = Field(description="stable, for programs: e.g. invalid_field, not_found")
    message: str = Field(description="for people: what was wrong")


class Error(Response):
    error: ErrorDetail


class ContactPoint(Response):
    kind: Annotated[str, OneOf(("phone", "email"))]
    value: str
    unreachable: bool


class Resident(Response):
    id: int
    name: str | None
    language: str | None
    unit: str | None = Field(description="building code and unit label")
    contact_points: list[ContactPoint]


class Ticket(Response):
    ref: str = Field(examples=["HL-000123"])
    channel: Annotated[str, OneOf(CHANNELS)]
    category: str
    priority: Annotated[str, OneOf(PRIORITIES)]
    status: Annotated[str, OneOf(STATUSES)]
    escalated: bool
    department: str | None = Field(description="department code")
    assignee: str | None = Field(description="operator email")
    language: str
    subject: str
    description: str
    contact_phone: str | None
    contact_email: str | None
    resident: Resident | None
    satisfaction: int | None
    first_response_due_at: Moment | None
    resolution_due_at: Moment | None
    created_at: Moment
    updated_at: Moment


class Attachment(Response):
    filename: str
    content_type: str
    size: int
    external_id: str | None


class Interaction(Response):
    id: int
    kind: str
    direction: Annotated[str, OneOf(("in", "out", "internal"))]
    channel: str
    sender: str | None
    subject: str | None
    body_text: str
    external_id: str | None
    attachments: list[Attachment]
    meta: dict[str, Any]
    created_at: Moment


class Event(Response):
    kind: str
    actor: str = Field(description="who: an operator email, api:NAME, rule:…")
    message: str
    data: dict[str, Any]
    created_at: Moment


class Callback(Response):
    id: int
    ticket_ref: str
    phone: str | None
    email: str | None
    purpose: str
    due_at: Moment
    queued_at: Moment | None
    status: Annotated[str, OneOf(CALLBACK_STATUSES)]
    attempts: int
    outcome: str | None
    claimed_by: str | None = Field(description="the email of the operator who took it on")


class TicketDetail(Ticket):
    timeline: list[Interaction]
    events: list[Event]
    callbacks: list[Callback]


class OutgoingMessage(Response):
    id: int
    ticket_ref: str | None
    channel: str
    to: str
    subject: str | None
    body_text: str
    message_id: str | None
    in_reply_to: str | None
    headers: dict[str, Any]
    status: str
    created_at: Moment


class IncidentTicket(Response):
    ref: str
    status: Annotated[str, OneOf(STATUSES)]


class FailedNotice(Response):
    step: str
    channel: str
    to: str
    status: str
    error: str | None
    refusal_code: Annotated[
        int | None,
        Field(description="Twilio's error code when it refused an SMS (21211, 21610, …)"),
    ]


class Incident(Response):
    id: int
    kind: Annotated[str, OneOf(INCIDENT_KINDS)]
    category: str
    status: Annotated[str, OneOf(INCIDENT_STATUSES)]
    buildings: list[str]
    units: list[str]
    texts: dict[str, str] = Field(description="per language: zh-Hant, zh-Hans, en, yue")
    keywords: list[str]
    starts_at: Moment
    expected_end_at: Moment | None
    resolved_at: Moment | None
    notify: bool
    created_at: Moment
    tickets: list[IncidentTicket]
    contacts: int = Field(description="calls and emails about it")
    notices: dict[str, dict[str, int]] = Field(
        description="per step (declared, update:N, resolved): count per delivery status"
    )
    failed_notices: list[FailedNotice]


Item = TypeVar("Item", bound=BaseModel)


class Page(Response, Generic[Item]):
    items: list[Item]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class TicketPage(Page[Ticket]):
    pass


class CallbackPage(Page[Callback]):
    pass


class ResidentPage(Page[Resident]):
    pass


class IncidentPage(Page[Incident]):
    pass
