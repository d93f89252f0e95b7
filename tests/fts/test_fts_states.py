"""Job state aggregation from file states (FTS state machine)."""

from __future__ import annotations

import pytest

from testbed.fts.states import job_state_from_files


def rows(*spec: tuple[int, str]) -> list[dict[str, object]]:
    return [{"file_index": i, "file_state": s} for i, s in spec]


@pytest.mark.parametrize(("files", "job_type", "expected"), [
    (rows((0, "SUBMITTED"), (1, "SUBMITTED")), "N", "SUBMITTED"),
    (rows((0, "ACTIVE"), (1, "SUBMITTED")), "N", "ACTIVE"),
    (rows((0, "FINISHED"), (1, "SUBMITTED")), "N", "ACTIVE"),
    (rows((0, "STAGING"),), "N", "STAGING"),
    (rows((0, "ARCHIVING"), (1, "FINISHED")), "N", "ARCHIVING"),
    (rows((0, "FINISHED"), (1, "FINISHED")), "N", "FINISHED"),
    (rows((0, "FINISHED"), (1, "FAILED")), "N", "FINISHEDDIRTY"),
    (rows((0, "FAILED"), (1, "FAILED")), "N", "FAILED"),
    (rows((0, "CANCELED"), (1, "CANCELED")), "N", "CANCELED"),
    (rows((0, "FAILED"), (0, "FINISHED"), (0, "NOT_USED")), "R", "FINISHED"),
    (rows((0, "FAILED"), (0, "FAILED")), "R", "FAILED"),
    (rows((0, "FAILED"), (0, "SUBMITTED")), "R", "ACTIVE"),
    (rows((0, "FINISHED"), (1, "FAILED")), "H", "FAILED"),
    (rows((0, "FAILED"), (1, "NOT_USED")), "H", "FAILED"),
    (rows((0, "FINISHED"), (1, "FINISHED")), "H", "FINISHED"),
])
def test_job_state(files: list[dict[str, object]], job_type: str, expected: str) -> None:
    assert job_state_from_files(files, job_type) == expected
