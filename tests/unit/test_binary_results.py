"""Binary result encodings, decoded by psycopg's own binary loaders as the reference."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.adapt import Transformer
from psycopg.pq import Format

from warehouse.interfaces.serve.binary import encode_column, numeric


def decoded(column: pa.Array, oid: int) -> list[object]:
    """Encode with wh, decode each value with psycopg's binary loader for that oid."""
    offsets, data, valid = encode_column(column, oid)
    loader = Transformer().get_loader(oid, Format.BINARY)
    raw = data.tobytes()
    return [
        loader.load(raw[offsets[i] : offsets[i + 1]]) if valid[i] else None
        for i in range(len(column))
    ]


@example(Decimal("0.01"))
@example(Decimal("-1E+5"))
@example(Decimal("10000.0001"))
@given(
    st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(min_value=-(10**20), max_value=10**20, allow_nan=False, places=4)
)
def test_numeric_round_trips(value: Decimal) -> None:
    loader = Transformer().get_loader(1700, Format.BINARY)
    assert loader.load(numeric(value)) == value


@pytest.mark.parametrize(
    ("values", "arrow", "oid"),
    [
        ([1, None, -32768, 32767], pa.int8(), 21),
        ([1, None, -(2**31), 2**31 - 1], pa.int32(), 23),
        ([1, None, -(2**63), 2**63 - 1], pa.int64(), 20),
        ([1.5, None, -0.0, 1e300], pa.float64(), 701),
        ([1.5, None], pa.float32(), 700),
        ([True, None, False], pa.bool_(), 16),
        ([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)], pa.date32(), 1082),
        ([dt.datetime(2024, 2, 29, 1, 2, 3, 123456), None, dt.datetime(1960, 1, 1)],
         pa.timestamp("us"), 1114),
        ([dt.time(13, 14, 15, 5), None], pa.time64("us"), 1083),
        (["x", None, "", "žluť"], pa.string(), 25),
        ([b"\x00\x01", None], pa.binary(), 17),
        ([Decimal("12.34"), None, Decimal("-0.001")], pa.decimal128(10, 3), 1700),
    ],
)  # fmt: skip
def test_columns_decode_to_their_values(values: list[object], arrow: pa.DataType, oid: int) -> None:
    column = (
        pa.array(values[:1] * 0 + values, type=arrow)
        if oid != 21
        else pa.array([v if v is None or -128 <= v <= 127 else None for v in values], type=arrow)
    )
    expected = column.to_pylist()
    assert decoded(column, oid) == expected


def test_timestamps_with_zone_are_utc_instants() -> None:
    moment = dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC)
    column = pa.array([moment, None], type=pa.timestamp("us", "UTC"))
    assert decoded(column, 1184) == [moment, None]
