"""Hypothesis strategies for the domain: arbitrary but well-typed cards, views and moments."""

from datetime import date, datetime, timedelta

from hypothesis import strategies as st

from models import (
    AccessGroup,
    Calendar,
    Card,
    CardFault,
    CardStatus,
    DoorMode,
    DoorRequest,
    DoorView,
    FaceCredential,
    FaceEvidence,
    FaceOutcome,
    FacePolicy,
    Genuineness,
    Holder,
    HolderStatus,
    PresentedCard,
    Reason,
    SiteCards,
    TimeWindow,
)
from tests.factories import TZ

DOORS = ("east-gate", "north-gate", "canteen-door")
NUMBERS = ("36010020260000000001", "36010020260000000002")

dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31))
optional_dates = st.none() | dates
moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=TZ)
)


@st.composite
def windows(draw: st.DrawFn) -> TimeWindow:
    days = draw(st.frozensets(st.integers(1, 8), min_size=1))
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(0, 1440).filter(lambda e: e != start))
    return TimeWindow(days, start, end)


groups = st.builds(
    AccessGroup,
    id=st.sampled_from(("staff", "leaders", "night")),
    doors=st.frozensets(st.sampled_from(DOORS), min_size=1),
    windows=st.lists(windows(), min_size=1, max_size=3).map(tuple),
    calendar=st.sampled_from(("", "cn")),
)


@st.composite
def calendars(draw: st.DrawFn, around: datetime) -> Calendar:
    near = st.integers(-2, 2).map(lambda n: around.date() + timedelta(days=n))
    return Calendar(
        "cn",
        holidays=draw(st.frozensets(near, max_size=3)),
        workdays=draw(st.frozensets(near, max_size=3)),
    )


cards = st.builds(
    Card,
    number=st.sampled_from(NUMBERS),
    holder_id=st.sampled_from(("H1", "H1", "H2")),
    issue_seq=st.integers(1, 4),
    card_class=st.sampled_from(("gold", "red", "blue", "green", "temporary")),
    status=st.sampled_from(CardStatus),
    valid_from=optional_dates,
    valid_until=optional_dates,
)

holders = st.builds(
    Holder,
    id=st.just("H1"),
    name=st.just("李娜"),
    card_class=st.just("red"),
    status=st.sampled_from(HolderStatus),
    valid_from=optional_dates,
    valid_until=optional_dates,
    require_face=st.booleans(),
)

SITE_ISSUER = "5943484E00000001"
SITE = SiteCards(frozenset({SITE_ISSUER}))

card_credentials = st.one_of(
    st.builds(
        PresentedCard,
        number=st.sampled_from(NUMBERS),
        genuine=st.sampled_from(Genuineness),
        issue_seq=st.none() | st.integers(0, 5),
        class_code=st.none() | st.integers(0, 6),
        valid_from=optional_dates,
        valid_until=optional_dates,
        issuer_id=st.sampled_from([None, SITE_ISSUER, "5943484E000000FF"]),
    ),
    st.builds(
        CardFault,
        reason=st.sampled_from(
            (Reason.CARD_MALFORMED, Reason.CARD_UNKNOWN, Reason.CARD_KEY_UNKNOWN)
        ),
    ),
)
faces = st.builds(
    FaceCredential,
    holder_id=st.sampled_from(("H1", "H2")),
    score_milli=st.integers(900, 1000),
    live=st.booleans(),
)
credentials = card_credentials | faces
evidence = st.builds(
    FaceEvidence,
    outcome=st.sampled_from(FaceOutcome),
    score_milli=st.none() | st.integers(0, 1000),
    threshold_milli=st.just(951),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[DoorRequest, DoorView, datetime]:
    now = draw(moments)
    card = draw(st.none() | cards)
    view = DoorView(
        view_seq=draw(st.integers(0, 10**6)),
        card=card,
        holder=draw(st.none() | holders),
        newest_issue_seq=draw(st.none() | st.integers(1, 5)),
        groups=tuple(draw(st.lists(groups, max_size=3))),
        calendars=(draw(calendars(now)),),
    )
    request = DoorRequest(
        draw(credentials),
        draw(st.sampled_from(DOORS)),
        "in",
        mode=draw(st.sampled_from(DoorMode)),
        face_policy=draw(st.sampled_from(FacePolicy)),
        face=draw(st.none() | evidence),
        site=SITE,
    )
    return request, view, now
