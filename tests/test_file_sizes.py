"""The kernel and applications stay in files of one job each: no file under core/ over about 500 lines."""
from __future__ import annotations

import pytest

from tests.conftest import REPO

LIMIT = 500
FILES = sorted((REPO / "core").rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_core_file_is_at_most_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= LIMIT, f"{path.relative_to(REPO)} has {lines} lines (limit {LIMIT}): split it by job"


def test_the_limit_check_sees_every_core_folder():
    folders = {p.parent.relative_to(REPO).as_posix() for p in FILES}
    assert {"core", "core/apps", "core/cli", "core/records", "core/runs"} <= folders
