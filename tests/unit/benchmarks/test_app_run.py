"""benchmarks.app_run: a session's health, read from session.json, beside the exit code."""

from __future__ import annotations

from benchmarks.app_run import health_summary


def test_a_late_session_gives_its_verdict_problems_and_misses() -> None:
    session = {
        "errors": ["camera 'arena': 12 of 216 analysed frames missed the deadline"],
        "health": {
            "verdict": "error",
            "problems": ["camera 'arena': 12 of 216 analysed frames missed the deadline"],
            "cameras": {"arena": {"deadline_ms": 20.0, "misses": 12, "miss_percent": 5.556}},
        },
    }
    health = health_summary(session)
    assert health["verdict"] == "error"
    assert health["problems"] == session["health"]["problems"]
    assert health["errors"] == session["errors"]
    assert health["deadline_ms"] == {"arena": 20.0}
    assert health["deadline_misses"] == {"arena": 12}
    assert health["deadline_miss_percent"] == {"arena": 5.556}


def test_a_session_without_a_health_section_has_no_verdict() -> None:
    health = health_summary({})
    assert health["verdict"] is None
    assert health["problems"] == [] and health["errors"] == []
    assert health["deadline_misses"] == {}
