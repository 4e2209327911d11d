"""A transaction row holds each field of the transaction in its column, steps by column."""

from __future__ import annotations

from decimal import Decimal

from correlator.repository import TX_COLUMNS, transaction_row
from correlator.transaction import Flag, Level, Missed, Status, StepResult, Transaction


def _step(name: str, **fields: object) -> StepResult:
    base: dict[str, object] = {
        "name": name,
        "events": 0,
        "first_time": 0,
        "last_time": 0,
        "anchor_time": 0,
        "warn_at": 0,
        "breach_at": 0,
        "duration_ns": 0,
        "level": Level.NONE,
        "late_by_ns": 0,
        "amount": None,
        "status": "",
    }
    base.update(fields)
    return StepResult(**base)  # type: ignore[arg-type]


def _transaction(**fields: object) -> Transaction:
    base: dict[str, object] = {
        "id": "tx-1",
        "workflow": "discharge",
        "id_time": 1_000,
        "facility": "NMC01",
        "status": Status.OVERDUE,
        "level": Level.BREACH,
        "start_time": 1_000,
        "end_time": 0,
        "last_time": 5_000,
        "duration_ns": 0,
        "warn_deadline": 7_000,
        "breach_deadline": 9_000,
        "flags": (Flag.MISSING_STEP,),
        "steps": (
            _step("adt", events=1, first_time=1_000, last_time=1_000, status="ok"),
            _step(
                "charge",
                events=2,
                first_time=4_000,
                last_time=5_000,
                anchor_time=1_000,
                warn_at=2_000,
                breach_at=3_000,
                duration_ns=3_000,
                level=Level.BREACH,
                late_by_ns=2_000,
                amount=Decimal("12.50"),
                status="error",
            ),
            _step("bill", anchor_time=1_000, warn_at=7_000, breach_at=9_000, duration_ns=0),
        ),
        "missed": (
            Missed("charge", Level.BREACH, 3_000, 4_000, 1_000),
            Missed("charge", Level.WARN, 2_000, 4_000, 2_000),
        ),
        "amount": Decimal("12.50"),
        "keys": (("charge", "C1"), ("visit", "V1")),
        "event_ids": ("e1", "e2", "e3"),
        "event_steps": ("adt", "charge", "charge"),
        "error_count": 1,
    }
    base.update(fields)
    return Transaction(**base)  # type: ignore[arg-type]


def _row(tx: Transaction, new_keys: tuple[tuple[str, str], ...] | None = None) -> dict:
    row = transaction_row(tx, version=77, evaluated_at=6_000, new_keys=new_keys)
    assert len(row) == len(TX_COLUMNS)
    pairs = zip(TX_COLUMNS, row, strict=True)
    return {name: list(v) if isinstance(v, tuple) else v for name, v in pairs}


def test_each_step_field_lands_in_its_column_in_step_order():
    row = _row(_transaction())
    assert row["step_names"] == ["adt", "charge", "bill"]
    assert row["step_counts"] == [1, 2, 0]
    assert row["step_first"] == [1_000, 4_000, 0]
    assert row["step_last"] == [1_000, 5_000, 0]
    assert row["step_levels"] == [Level.NONE, Level.BREACH, Level.NONE]
    # A duration only where the step happened and its anchor is known; else -1.
    assert row["step_durations"] == [-1, 3_000, -1]
    assert row["step_warn"] == [0, 2_000, 7_000]
    assert row["step_breach"] == [0, 3_000, 9_000]
    assert row["step_status"] == ["ok", "error", ""]


def test_the_transaction_fields_and_what_it_missed():
    row = _row(_transaction())
    assert row["id"] == "tx-1" and row["workflow"] == "discharge" and row["id_time"] == 1_000
    assert row["status"] == Status.OVERDUE and row["level"] == Level.BREACH
    assert row["end_time"] is None and row["duration_ns"] is None  # still open
    assert (row["warn_deadline"], row["breach_deadline"]) == (7_000, 9_000)
    assert row["flags"] == [Flag.MISSING_STEP]
    assert row["missed_steps"] == ["charge"]  # once, however many levels it missed
    # The breach at 3,000 implies its warn deadline (2,000) was missed as well.
    assert (row["warn_missed_at"], row["breach_missed_at"]) == (2_000, 3_000)
    assert row["amount"] == Decimal("12.50")
    assert row["event_ids"] == ["e1", "e2", "e3"] and row["event_count"] == 3
    assert row["event_steps"] == ["adt", "charge", "charge"]
    assert row["key_names"] == ["charge", "visit"] and row["key_values"] == ["C1", "V1"]
    assert row["error_count"] == 1
    assert (row["version"], row["deleted"], row["evaluated_at"]) == (77, 0, 6_000)


def test_key_delta_columns_say_which_keys_are_new():
    tx = _transaction()
    everything = _row(tx)  # another writer: every key indexed, no delta
    assert everything["key_delta"] == 0
    assert everything["delta_key_names"] == [] and everything["delta_key_values"] == []
    some = _row(tx, new_keys=(("charge", "C1"),))
    assert some["key_delta"] == 1
    assert some["delta_key_names"] == ["charge"] and some["delta_key_values"] == ["C1"]
    none = _row(tx, new_keys=())
    assert none["key_delta"] == 1 and none["delta_key_names"] == []


def test_a_closed_transaction_without_steps_keys_or_misses():
    tx = _transaction(
        status=Status.COMPLETE,
        level=Level.NONE,
        end_time=8_000,
        duration_ns=7_000,
        warn_deadline=0,
        breach_deadline=0,
        flags=(),
        steps=(),
        missed=(),
        amount=None,
        keys=(),
    )
    row = _row(tx)
    assert (row["end_time"], row["duration_ns"]) == (8_000, 7_000)
    assert row["warn_deadline"] is None and row["breach_deadline"] is None
    assert row["missed_steps"] == [] and row["step_names"] == [] and row["step_durations"] == []
    assert (row["warn_missed_at"], row["breach_missed_at"]) == (0, 0)
    assert row["key_names"] == [] and row["key_values"] == [] and row["amount"] is None
