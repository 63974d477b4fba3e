"""Splitting a SQL script into statements: one quote-aware splitter for the Flink SQL files and the migrations.

A ``;`` or ``--`` inside a string literal, a quoted identifier or a comment does not end a statement (the
Flink loader used to strip ``--`` and split on ``;`` anywhere, so a literal such as ``'a;b'`` or
``'--'`` broke a job). A leaf module: standard library only.
"""

from __future__ import annotations


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` outside quotes, backticks and comments; drop comments (hints kept) and statements that are only comments."""
    statements, current, i, n = [], [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = i + 1
            while end < n and sql[end] != ch:
                end += 2 if sql[end] == "\\" else 1
            current.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            current.append("\n")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            # a hint (``/*+ OPTIONS(...) */``) is part of the statement; a plain comment is not
            current.append(sql[i:end] if sql.startswith("/*+", i) else " ")
            i = end
        elif ch == ";":
            statements.append("".join(current))
            current, i = [], i + 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]
