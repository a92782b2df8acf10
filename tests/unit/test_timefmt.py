"""One RFC 3339 writer: UTC, a Z, and no guessing about naive times."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.timefmt import rfc3339
from sync.envelope import parse_rfc3339

BEIJING = timezone(timedelta(hours=8))


def test_an_aware_time_is_written_in_utc() -> None:
    assert rfc3339(datetime(2026, 11, 23, 9, 0, tzinfo=BEIJING)) == "2026-11-23T01:00:00Z"
    at = datetime(2026, 11, 23, 9, 0, 0, 123_456, tzinfo=BEIJING)
    assert rfc3339(at, "milliseconds") == "2026-11-23T01:00:00.123Z"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        rfc3339(datetime(2026, 11, 23, 9, 0))


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, BEIJING, timezone(timedelta(hours=-5))]),
    )
)
def test_what_is_written_reads_back_as_the_same_second(moment: datetime) -> None:
    assert parse_rfc3339(rfc3339(moment), "t") == moment.replace(microsecond=0)
