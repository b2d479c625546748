"""`ckptdb sql` on SQLite: the authorizer that lets a statement a person typed only read."""

from __future__ import annotations

import sqlite3

from ckptdb.errors import CkptdbError

PROGRESS_STEPS = 1000
"""Virtual machine instructions between two looks at the stop flag of `ckptdb sql`: a few
microseconds of work, so an interrupted query ends at once. Measured: a 3,000,000-row recursive
CTE took 804 ms with the handler against 793 ms without (best of 5; 889 ms at every 100 steps)."""

_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# Pragmas that only report, allowed without an argument (with one, most of them would set).
_REPORTING_PRAGMAS = frozenset(
    (
        "application_id",
        "auto_vacuum",
        "busy_timeout",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "integrity_check",
        "journal_mode",
        "max_page_count",
        "mmap_size",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "quick_check",
        "schema_version",
        "synchronous",
        "table_list",
        "user_version",
        "wal_autocheckpoint",
    )
)
# Pragmas whose argument names what to report on (a table, an index, a schema, a row limit).
_LOOKUP_PRAGMAS = frozenset(
    (
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    )
)


# Functions `ckptdb sql` may call on SQLite: SQLite's built-in functions, as of 3.47, that read
# their arguments and nothing else. Not here: load_extension (loads code), fts3_tokenizer (returns,
# or with two arguments installs, a C pointer), sqlite_log (writes to the error log); nor anything a
# newer SQLite adds until it is looked at (an allowlist: a function it does not know is refused).
_SAFE_FUNCTION_NAMES = """
    -> ->> abs acos acosh asin asinh atan atan2 atanh avg ceil ceiling char coalesce concat
    concat_ws cos cosh count cume_dist current_date current_time current_timestamp date datetime
    degrees dense_rank exp first_value floor format glob group_concat hex ifnull iif if instr
    julianday lag last_value lead length like likelihood likely ln log log10 log2 lower ltrim max
    min mod nth_value ntile nullif octet_length percent_rank pi pow power printf quote radians
    random randomblob rank replace round row_number rtrim sign sin sinh soundex sqrt strftime
    string_agg substr substring subtype sum tan tanh time timediff total trim trunc typeof unhex
    unicode unistr unixepoch unlikely upper zeroblob changes last_insert_rowid total_changes
    sqlite_version sqlite_source_id sqlite_compileoption_get sqlite_compileoption_used
    json json_array json_array_length json_error_position json_extract json_group_array
    json_group_object json_insert json_object json_patch json_pretty json_quote json_remove
    json_replace json_set json_type json_valid jsonb jsonb_array jsonb_extract jsonb_group_array
    jsonb_group_object jsonb_insert jsonb_object jsonb_patch jsonb_remove jsonb_replace jsonb_set
    json_each json_tree match bm25 highlight snippet offsets matchinfo
"""
_SAFE_FUNCTIONS = frozenset(_SAFE_FUNCTION_NAMES.split())


def read_only_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
) -> int:
    if action == sqlite3.SQLITE_FUNCTION:  # arg2: the function's name
        return sqlite3.SQLITE_OK if (arg2 or "").lower() in _SAFE_FUNCTIONS else sqlite3.SQLITE_DENY
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _LOOKUP_PRAGMAS or (arg2 is None and name in _REPORTING_PRAGMAS):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        # Table-valued pragmas (SELECT * FROM pragma_table_info('checkpoints')) ask this while
        # compiling and never run it; a real UPDATE of the schema table still meets query_only,
        # the read-only file and SQLite's own writable_schema=OFF.
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def read_only_error(exc: sqlite3.Error) -> CkptdbError:
    text = str(exc)
    if "one statement at a time" in text:
        return CkptdbError("refused: one SQL statement at a time (nothing was run)")
    if text.startswith("not authorized to use function: "):
        name = text.removeprefix("not authorized to use function: ")
        return CkptdbError(
            "refused: `sql` calls only functions without side effects (aggregates, text, math, "
            f"date, JSON functions); {name}() is not one of them: nothing was run"
        )
    if any(sign in text for sign in ("authoriz", "readonly", "query_only", "may not be modified")):
        return CkptdbError(
            "refused: `sql` only reads (SELECT, WITH, reporting PRAGMAs such as table_info); this "
            f"statement would write or open another file ({text}): nothing was changed"
        )
    return CkptdbError(f"SQL error: {text}")
