#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where flashd finds its board database.

- flashd run from its build tree, without --boards-dir, boards_dir or
  FLASHD_BOARDS_DIR, reads the source tree's board data (it is not
  installed, so the installed data directory is empty or stale).
- An empty database is a warning that names the directories searched.
"""

import os
import tempfile

import harness


def without_boards_env():
    saved = os.environ.pop("FLASHD_BOARDS_DIR", None)
    return saved


def restore_boards_env(saved):
    if saved is not None:
        os.environ["FLASHD_BOARDS_DIR"] = saved


def warnings(d):
    return [line for line in d.log_text().splitlines() if "warning" in line.lower()]


def test_build_tree_flashd_reads_source_boards():
    saved = without_boards_env()
    try:
        with harness.Flashd(boards_dirs=[], log_level="info") as d:
            names = [b["name"] for b in d.client().call("board.list")]
            sources = {f[:-5] for f in os.listdir(harness.boards_dir()) if f.endswith(".json")}
            assert sources and sources <= set(names), f"board.list {names} lacks the source boards {sources}"
            assert not [w for w in warnings(d) if "board database" in w], warnings(d)
            assert harness.boards_dir() in d.log_text() or \
                os.path.realpath(harness.boards_dir()) in d.log_text(), "the log does not say where boards came from"
    finally:
        restore_boards_env(saved)


def test_empty_database_is_a_warning_naming_the_dirs():
    with tempfile.TemporaryDirectory(prefix="flashd-noboards-") as empty:
        other = os.path.join(empty, "missing")
        with harness.Flashd(boards_dirs=[empty, other], log_level="warning") as d:
            assert d.client().call("board.list") == []
            w = [line for line in warnings(d) if "board database is empty" in line]
            assert w, f"no warning about the empty database in:\n{d.log_text()}"
            assert empty in w[0] and other in w[0], w[0]


if __name__ == "__main__":
    harness.main([test_build_tree_flashd_reads_source_boards, test_empty_database_is_a_warning_naming_the_dirs])
