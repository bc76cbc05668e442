"""Importing history: Segment JSON lines, mapped CSV, outcomes; and business metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from history.business import compute, format_summary
from history.importers import (
    ColumnMapping,
    ImportReport,
    OutcomeRecord,
    OutcomesError,
    import_csv,
    import_events,
    read_outcomes,
)
from streams.events import EventType, Source


def _ts(day: str, hour: int = 12) -> str:
    return f"{day}T{hour:02d}:00:00Z"


def _epoch(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def test_segment_lines_resolve_accounts_like_the_identity_map(tmp_path: Path) -> None:
    lines = [
        {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme",
         "traits": {"name": "Acme", "seats": 5, "createdAt": "2024-01-01"},
         "timestamp": _ts("2025-01-01", 8)},
        {"type": "track", "messageId": "t1", "userId": "u1", "event": "Logged In",
         "timestamp": _ts("2025-01-01")},
        {"type": "track", "messageId": "t2", "userId": "u2", "event": "Logged In",
         "timestamp": _ts("2025-01-01")},  # nobody knows u2's account yet
        {"type": "track", "messageId": "t3", "userId": "u2", "event": "Ticket Opened",
         "properties": {"ticket_id": "T1", "priority": "high"},
         "context": {"groupId": "globex"}, "timestamp": _ts("2025-01-02")},
        {"type": "page", "messageId": "p1", "userId": "u1", "name": "Pricing",
         "timestamp": _ts("2025-01-03")},
        # skew correction: the client clock was an hour ahead
        {"type": "track", "messageId": "t4", "userId": "u1", "event": "Logged In",
         "originalTimestamp": "2025-01-04T13:00:00Z", "sentAt": "2025-01-04T13:00:05Z",
         "receivedAt": "2025-01-04T12:00:05Z"},
        {"type": "track", "messageId": "bad", "event": "Logged In"},  # no identity
    ]
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n{not json\n\n")
    report = ImportReport()
    events = list(import_events(path, "ws", report=report))
    assert [e.message_id for e in events] == ["g1", "t1", "t2", "t3", "p1", "t4"]
    by_id = {e.message_id: e for e in events}
    assert by_id["g1"].account_id == "acme" and by_id["g1"].traits["created_at"] == "2024-01-01"
    assert by_id["t1"].account_id == "acme"
    assert by_id["t2"].account_id is None
    assert by_id["t3"].account_id == "globex"
    assert by_id["p1"].type is EventType.PAGE and by_id["p1"].name == "Pricing"
    assert by_id["t4"].timestamp == _epoch("2025-01-04T12:00:00")
    assert all(e.source is Source.IMPORT and e.workspace == "ws" for e in events)
    assert report.kept == 6 and report.unattributed == 1
    assert report.rejected == {"missing_identity": 1, "not_json": 1}
    assert "6 events kept of 8 read" in report.summary()


def test_processes_sharing_a_file_count_and_keep_what_one_process_does(
    tmp_path: Path,
) -> None:
    day = "2025-01-01"
    lines: list[object] = [
        {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme",
         "timestamp": _ts(day, 1)},
        {"type": "Group", "messageId": "g2", "userId": "u2", "groupId": "globex",
         "timestamp": _ts(day, 1)},
        {"type": "group", "messageId": "g3", "userId": "u3", "groupId": "initech",
         "timestamp": "yesterday"},  # rejected: u3 stays without an account
    ]
    for n in range(40):
        user = ("u1", "u2", "u3", "u4")[n % 4]
        lines.append({"type": "track", "messageId": f"t{n}", "userId": user,
                      "event": "Logged In", "timestamp": _ts(day, 2 + n % 20)})
    lines += [
        # rejected messages of known accounts, of unknown people, and unreadable ids
        {"type": "track", "messageId": "late", "userId": "u1", "event": "Logged In",
         "timestamp": "1999-01-01T00:00:00Z"},
        {"type": "track", "messageId": "noname", "userId": "u2", "timestamp": _ts(day)},
        {"type": "track", "messageId": "anon", "anonymousId": "a9", "event": "Logged In",
         "timestamp": _ts(day)},
        {"type": "track", "messageId": "named", "userId": "u4", "event": "Logged In",
         "context": {"groupId": "globex"}, "timestamp": _ts(day, 23)},
        {"type": "track", "messageId": "elsewhere", "userId": "u1", "event": "Logged In",
         "context": {"groupId": "globex"}, "timestamp": _ts(day, 23)},
        {"type": "track", "messageId": "badgroup", "userId": "u1", "event": "Logged In",
         "context": {"groupId": {"id": 1}}, "timestamp": _ts(day)},
        {"type": "track", "messageId": "badid", "userId": ["u1"], "event": "Logged In",
         "timestamp": _ts(day)},
        {"type": "screech", "messageId": "x", "userId": "u1"},
        [1, 2],
    ]
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n{not json\n")

    alone = ImportReport()
    everything = list(import_events(path, "ws", report=alone))
    parts: list[ImportReport] = []
    kept: list[str] = []
    for index in range(3):
        def mine(account: str, index: int = index) -> bool:
            return sum(map(ord, account)) % 3 == index

        report = ImportReport()
        kept += [e.message_id for e in import_events(path, "ws", report=report, keep=mine)
                 if e.account_id is not None and mine(e.account_id)]
        parts.append(report)

    assert sorted(kept) == sorted(e.message_id for e in everything if e.account_id)
    combined = ImportReport.combined(parts)
    assert combined.summary() == alone.summary()
    assert (combined.read, combined.kept, combined.unattributed, combined.rejected) == (
        alone.read, alone.kept, alone.unattributed, alone.rejected)
    assert alone.rejected["bad_timestamp"] == 2 and alone.rejected["not_json"] == 1
    assert sum(p.kept for p in parts) < alone.kept * 3  # others' messages were skipped


def test_csv_with_a_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(
        "customer,company,action,when,props,plan\n"
        "c1,acme,Report Published,2025-02-01T10:00:00Z,\"{\"\"pages\"\": 3}\",pro\n"
        "c2,,Logged In,1738400400,,\n"
        ",acme,Logged In,2025-02-01,,\n"
        "c3,acme,,2025-02-01,,\n"
        "c4,acme,Logged In,yesterday,,\n",
        encoding="utf-8",
    )
    mapping = ColumnMapping.parse(
        "user=customer,account=company,event=action,timestamp=when,properties=props")
    report = ImportReport()
    events = list(import_csv(path, mapping, "ws", report))
    # sorted by time: the epoch row (09:00 UTC) comes before the 10:00 one
    assert [e.name for e in events] == ["Logged In", "Report Published"]
    assert events[1].account_id == "acme" and events[1].properties == {"pages": 3}
    assert events[0].account_id == "c2"  # no account: a one-person customer
    assert events[0].timestamp == 1738400400.0
    assert report.rejected == {"missing_identity": 1, "missing_event_name": 1,
                               "bad_timestamp": 1}
    with pytest.raises(ValueError, match="column mapping"):
        ColumnMapping.parse("person=customer")
    # without a properties column, unmapped columns become properties
    loose = list(import_csv(path, ColumnMapping.parse(
        "user=customer,account=company,event=action,timestamp=when"), "ws"))
    assert loose[1].properties["plan"] == "pro"


def test_outcomes_csv(tmp_path: Path) -> None:
    good = tmp_path / "outcomes.csv"
    good.write_text("account,renewal_date,outcome,arr,new_arr\n"
                    "acme,2025-06-30,Renewed,12000,15000\n"
                    "globex,2025-07-15,churned,8000,\n", encoding="utf-8")
    rows = read_outcomes(good)
    assert rows[0] == OutcomeRecord("acme", date(2025, 6, 30), "renewed", 12000.0, 15000.0)
    assert rows[1].churned and rows[1].arr_after == 0.0
    bad = tmp_path / "bad.csv"
    bad.write_text("account_id,date,outcome,arr\n,2025-01-01,churned,1\n"
                   "x,01/02/2025,churned,1\ny,2025-01-01,lost,1\nz,2025-01-01,churned,lots\n",
                   encoding="utf-8")
    with pytest.raises(OutcomesError) as info:
        read_outcomes(bad)
    assert "4 bad row(s)" in str(info.value)


def test_business_metrics_on_a_known_history(tmp_path: Path) -> None:
    def group(account: str, day: str, arr: float) -> dict:
        return {"type": "group", "messageId": f"g-{account}", "userId": f"{account}-u",
                "groupId": account, "timestamp": _ts(day, 1),
                "traits": {"arr": arr, "created_at": "2024-10-01"}}

    def track(account: str, day: str, event: str, n: int = 0, **props: object) -> dict:
        return {"type": "track", "messageId": f"{account}-{day}-{event}-{n}",
                "userId": f"{account}-u", "event": event, "properties": props,
                "context": {"groupId": account}, "timestamp": _ts(day)}

    lines = [group(a, "2025-01-01", 10_000.0) for a in ("a", "b", "c", "d")]
    for a in ("a", "b", "c", "d"):
        lines.append(track(a, "2025-01-02", "Logged In"))
        lines.append(track(a, "2025-01-03", "Logged In"))
    lines.append(track("a", "2025-01-10", "NPS Submitted", score=10))
    lines.append(track("b", "2025-01-11", "NPS Submitted", score=9))
    lines.append(track("c", "2025-01-12", "NPS Submitted", score=3))
    lines.append(track("d", "2025-01-12", "NPS Submitted", score=8))
    lines.append(track("a", "2025-03-05", "Logged In"))
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    outcomes = [
        OutcomeRecord("a", date(2025, 2, 10), "renewed", 10_000.0, 12_000.0),
        OutcomeRecord("b", date(2025, 2, 12), "contracted", 10_000.0, 6_000.0),
        OutcomeRecord("c", date(2025, 2, 20), "churned", 10_000.0, 0.0),
        OutcomeRecord("d", date(2025, 3, 1), "renewed", 10_000.0, 10_000.0),
    ]
    m = compute(import_events(path, "ws"), outcomes)
    assert m["months"] == ["2025-01", "2025-02", "2025-03"]
    feb = m["churn"][1]
    assert feb["customers_at_start"] == 4 and feb["lost"] == 1 and feb["churn_rate"] == 0.25
    assert m["churn"][2]["customers_at_start"] == 3
    assert m["retention"]["grr"] == pytest.approx((10 + 6 + 0 + 10) / 40)
    assert m["retention"]["nrr"] == pytest.approx((12 + 6 + 0 + 10) / 40)
    assert m["nps"][0]["nps"] == pytest.approx(100 * (2 - 1) / 4)
    assert m["engagement"][0]["monthly_active_users"] == 4
    assert m["engagement"][0]["active_days_per_user"] == 2.0
    cohort = m["cohorts"]["rows"][0]
    assert cohort["cohort"] == "2024-Q4" and cohort["retained"] == [1.0, 0.75, 0.75]
    assert m["clv"]["clv"] == pytest.approx(10_000 * 0.8 / m["annual_churn_rate"])
    text = format_summary(m)
    assert "net revenue retention 70.0%" in text
