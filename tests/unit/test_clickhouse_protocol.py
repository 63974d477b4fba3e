"""The embedded ClickHouse server's request parsing, errors and codecs (no server, no chDB)."""

from __future__ import annotations

import gzip
import zlib

import lz4.frame
import pytest

from twitch_pipeline.clickhouse_server import codecs
from twitch_pipeline.clickhouse_server.errors import ClickHouseError
from twitch_pipeline.clickhouse_server.protocol import Params, read_statement


def chunks(data: bytes, size: int):
    return iter([data[i : i + size] for i in range(0, len(data), size)])


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_insert_in_body_splits_statement_from_data_however_it_is_chunked(size):
    data = b"\x02\x00\x01\r\n binary \x00"
    statement = read_statement(None, chunks(b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n" + data, size))
    assert statement.sql == "INSERT INTO db.t (`a`, `b`)"
    assert statement.insert_format == "Native"
    assert b"".join(statement.data) == data


def test_insert_statement_in_url_and_data_in_body():
    statement = read_statement("INSERT INTO t FORMAT JSONEachRow", iter([b'{"a":1}\n', b'{"a":2}\n']))
    assert (statement.sql, statement.insert_format) == ("INSERT INTO t", "JSONEachRow")
    assert b"".join(statement.data) == b'{"a":1}\n{"a":2}\n'


def test_values_insert_streams_as_values_format():
    statement = read_statement(None, iter([b"insert into t values (1, 'FORMAT x'), (2, 'y')"]))
    assert (statement.sql, statement.insert_format) == ("insert into t", "Values")
    assert b"".join(statement.data) == b" (1, 'FORMAT x'), (2, 'y')"


def test_insert_select_and_plain_queries_are_sql():
    assert read_statement(None, iter([b"INSERT INTO t SELECT * FROM s FORMAT Native"])).insert_format is None
    statement = read_statement("SELECT 1", iter([b" + 1 FORMAT JSON"]))
    assert statement.sql == "SELECT 1 + 1 FORMAT JSON" and statement.insert_format is None
    assert statement.output_format("TabSeparated") == "JSON"
    assert read_statement(None, iter([b"SELECT 2"])).output_format("TabSeparated") == "TabSeparated"


def test_statement_keyword_skips_comments():
    assert read_statement(None, iter([b"-- note\n/* x */ set max_threads = 1"])).keyword == "SET"


def test_empty_query_is_a_syntax_error():
    with pytest.raises(ClickHouseError) as err:
        read_statement(None, iter([b"  \n"]))
    assert err.value.code == 62 and err.value.http_status == 400


def test_params_split_transport_settings_and_query_parameters():
    split = Params.split({"database": "d", "query_id": "q", "session_id": "s", "max_threads": "2",
                          "param_n": "5", "enable_http_compression": "1", "wait_end_of_query": "1"})
    assert split.transport == {"database": "d", "query_id": "q", "session_id": "s", "enable_http_compression": "1", "wait_end_of_query": "1"}
    assert split.settings == {"max_threads": "2"}
    assert split.query_params == {"n": "5"}


@pytest.mark.parametrize(("text", "code", "name", "status"), [
    ("Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR)", 62, "SYNTAX_ERROR", 400),
    ("Code: 60. DB::Exception: Table default.x does not exist. (UNKNOWN_TABLE) (version 26.9.2.1)", 60, "UNKNOWN_TABLE", 404),
    ("Streaming insert finish failed: Code: 27. DB::Exception: Cannot parse input: (at row 1)\n: While executing X. "
     "(CANNOT_PARSE_INPUT_ASSERTION_FAILED) (version 26.9.2.1)", 27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 400),
    ("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)", 241, "MEMORY_LIMIT_EXCEEDED", 500),
    ("something odd", 1001, "STD_EXCEPTION", 500),
])
def test_engine_errors_keep_code_name_and_status(text, code, name, status):
    err = ClickHouseError.from_engine(RuntimeError(text))
    assert (err.code, err.name, err.http_status) == (code, name, status)
    body = err.text("26.9.2.1")
    assert body.startswith(f"Code: {code}. DB::Exception: ") and body.endswith("(version 26.9.2.1)\n")
    assert body.count("(version") == 1


@pytest.mark.parametrize(("encoding", "compress"), [
    ("lz4", lz4.frame.compress),
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("zstd", codecs.zstd.compress),
    ("", lambda b: b),
])
def test_decode_handles_split_and_concatenated_frames(encoding, compress):
    parts = [b"first block " * 50, b"second block " * 70]
    body = b"".join(compress(p) for p in parts)
    assert b"".join(codecs.decode(chunks(body, 13), encoding)) == b"".join(parts)


def test_decode_rejects_unknown_and_corrupt_bodies():
    with pytest.raises(ClickHouseError, match="Unknown Content-Encoding 'snappy'"):
        list(codecs.decode(iter([b"x"]), "snappy"))
    with pytest.raises(ClickHouseError) as err:
        list(codecs.decode(iter([b"not gzip at all"]), "gzip"))
    assert err.value.name == "CANNOT_DECOMPRESS"


def test_choose_encoding_follows_client_preference():
    assert codecs.choose_encoding("lz4,zstd,gzip,deflate") == "lz4"
    assert codecs.choose_encoding("br;q=1.0, gzip;q=0.8") == "gzip"
    assert codecs.choose_encoding("") is None
    assert gzip.decompress(codecs.encode(b"abc", "gzip")) == b"abc"
