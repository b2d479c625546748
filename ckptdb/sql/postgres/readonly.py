"""`ckptdb sql` on PostgreSQL: a read-only transaction, session guards, and PostgreSQL's own
parser (pglast) allowing only functions without side effects.
"""

from __future__ import annotations

from typing import Any

from ckptdb.errors import (
    CkptdbError,
)
from ckptdb.sql.backend import (
    DatabaseTarget,
)
from ckptdb.sql.postgres.errors import translate_error

CURSOR_PREFIX = "DECLARE ckptdb_sql NO SCROLL CURSOR FOR "
REPORTING = ("SHOW", "EXPLAIN")
"""Statements that only report (like SQLite's reporting PRAGMAs) but cannot be a cursor; they run in
the same read-only transaction, which refuses what EXPLAIN ANALYZE of a write would do."""


_CATALOG_FIRST = "set_config('search_path', 'pg_catalog, ' || current_setting('search_path'), true)"
_CHECK_CLIENT = "set_config('client_connection_check_interval', '1000', true)"


def session_guards(conn: Any) -> str:
    """Settings for the transaction of `ckptdb sql` (undone by its rollback): pg_catalog first in
    search_path, and, from PostgreSQL 14 on, a check every second that the client is still there,
    so a query whose `ckptdb sql` was killed (kill -9, a closed terminal) ends on the server instead
    of running on until it finishes, which for a runaway recursive CTE is never."""
    if conn.get_server_version().major >= 14:
        return f"SELECT {_CATALOG_FIRST}, {_CHECK_CLIENT}"
    return f"SELECT {_CATALOG_FIRST}"


# Functions `ckptdb sql` may call on PostgreSQL: each reads its arguments (or the tables the query
# already reads) and nothing else: no other session, no file, no setting, no lock, no sequence, no
# sleep, and none runs SQL given as text (query_to_xml, ts_stat, dblink...). An allowlist, because
# the server has thousands of functions and extensions add more; a denylist would miss one.
_SAFE_FUNCTION_NAMES = """
    count sum avg min max every bool_and bool_or bit_and bit_or bit_xor string_agg array_agg
    json_agg jsonb_agg json_object_agg jsonb_object_agg json_agg_strict jsonb_agg_strict
    json_object_agg_strict jsonb_object_agg_strict json_object_agg_unique jsonb_object_agg_unique
    stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_avgx
    regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy
    percentile_cont percentile_disc mode rank dense_rank percent_rank cume_dist row_number ntile
    lag lead first_value last_value nth_value range_agg range_intersect_agg any_value
    abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi
    power radians round scale sign sqrt trim_scale trunc width_bucket acos acosd asin asind atan
    atand atan2 atan2d cos cosd cot cotd sin sind tan tand sinh cosh tanh asinh acosh atanh
    to_char to_number to_date to_timestamp to_hex
    ascii bit_length btrim char_length character_length chr concat concat_ws format initcap left
    length lower lpad ltrim md5 normalize is_normalized octet_length overlay position quote_ident
    quote_literal quote_nullable regexp_count regexp_instr regexp_like regexp_match regexp_matches
    regexp_replace regexp_split_to_array regexp_split_to_table regexp_substr repeat replace reverse
    right rpad rtrim split_part starts_with string_to_array string_to_table strpos substr substring
    translate unistr upper like_escape similar_to_escape similar_escape encode decode sha224
    sha256 sha384 sha512 convert_from convert_to get_byte get_bit set_byte set_bit
    age clock_timestamp current_date date_add date_bin date_part date_subtract date_trunc extract
    isfinite justify_days justify_hours justify_interval localtime localtimestamp make_date
    make_interval make_time make_timestamp make_timestamptz now statement_timestamp
    transaction_timestamp timeofday timezone overlaps
    to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array
    json_build_object jsonb_build_object json_object jsonb_object json_array_elements
    jsonb_array_elements json_array_elements_text jsonb_array_elements_text json_array_length
    jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text json_extract_path
    jsonb_extract_path json_extract_path_text jsonb_extract_path_text json_object_keys
    jsonb_object_keys json_populate_record jsonb_populate_record json_populate_recordset
    jsonb_populate_recordset json_to_record jsonb_to_record json_to_recordset jsonb_to_recordset
    json_strip_nulls jsonb_strip_nulls jsonb_set jsonb_set_lax jsonb_insert jsonb_pretty
    json_typeof jsonb_typeof jsonb_path_exists jsonb_path_match jsonb_path_query
    jsonb_path_query_array jsonb_path_query_first jsonb_concat jsonb_contains jsonb_exists
    array_append array_cat array_dims array_fill array_length array_lower array_ndims
    array_position array_positions array_prepend array_remove array_replace array_sample
    array_shuffle array_to_string array_upper cardinality trim_array unnest generate_series
    generate_subscripts
    coalesce nullif greatest least num_nulls num_nonnulls pg_typeof format_type pg_column_size
    pg_size_pretty pg_size_bytes pg_relation_size pg_table_size pg_indexes_size
    pg_total_relation_size pg_database_size pg_get_viewdef pg_get_indexdef pg_get_constraintdef
    obj_description col_description to_regclass pg_collation_for current_database current_schema
    current_schemas version gen_random_uuid uuid_extract_timestamp uuid_extract_version
    random random_normal int4range int8range numrange tsrange tstzrange daterange lower_inc
    upper_inc lower_inf upper_inf isempty range_merge
"""
_SAFE_FUNCTIONS = frozenset(_SAFE_FUNCTION_NAMES.split())


def check_read_only_sql(text: str) -> None:
    """Refuse, before anything reaches the server, a statement that is not one query (or SHOW, or
    EXPLAIN of a query) or that calls a function outside `_SAFE_FUNCTIONS`."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(text)
    except ParseError as exc:
        raise CkptdbError(f"SQL error: {exc.args[0]}") from None
    if len(statements) != 1:
        raise CkptdbError("refused: one SQL statement at a time (nothing was run)")
    statement = statements[0].stmt
    if isinstance(statement, ast.ExplainStmt):
        statement = statement.query
    if isinstance(statement, ast.VariableShowStmt):
        return
    if not isinstance(statement, ast.SelectStmt):
        raise refusal(None)
    pending: list[Any] = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, (tuple, list)):
            pending.extend(node)
        elif isinstance(node, ast.Node):
            if type(node).__name__.endswith("Stmt") and not isinstance(node, ast.SelectStmt):
                raise refusal(None)  # a DELETE inside WITH, say
            if isinstance(node, ast.FuncCall):
                _check_function(tuple(part.sval for part in node.funcname or ()))
            if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
                raise refusal("SELECT INTO creates a table")
            pending.extend(getattr(node, attribute) for attribute in node)


def _check_function(name: tuple[str, ...]) -> None:
    *schema, function = name
    if schema in ([], ["pg_catalog"]) and function in _SAFE_FUNCTIONS:
        return
    raise CkptdbError(
        f"refused: `sql` calls only functions without side effects (aggregates, text, math, time, "
        f"JSON and array functions); {'.'.join(name)}() is not one of them: nothing was run"
    )


def refusal(server_message: str | None) -> CkptdbError:
    """The same wording as on SQLite: `sql` only reads, and nothing was changed."""
    why = "is not a query" if server_message is None else f"would write ({server_message})"
    return CkptdbError(
        "refused: `sql` only reads (one SELECT, WITH, VALUES or TABLE query, or SHOW or EXPLAIN); "
        f"this statement {why}: nothing was changed"
    )


def read_only_error(exc: BaseException, target: DatabaseTarget, text: str) -> CkptdbError:
    state = getattr(exc, "sqlstate", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "multiple commands" in message:
        return CkptdbError("refused: one SQL statement at a time (nothing was run)")
    if state == "25006" or (state == "0A000" and "data-modifying" in message):
        return refusal(message)
    if state is not None and state.startswith(("42", "22", "0A", "2B", "3F")):
        return CkptdbError(f"SQL error: {message}")
    return translate_error(exc, target)
