package io.twitchpipeline.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * A Kafka record as one JSON object: why it is not a usable one (or NULL), its top-level scalar fields and its
 * top-level arrays, by field name. The record is parsed once ({@link ParsedRecord}).
 *
 * <p>Flink 2.0's JSON_VALUE parses the whole document on every call: a job reading twenty fields parsed each
 * record twenty times. Here SQL reads {@code doc.fields['event_id']} instead. The values follow JSON_VALUE: a
 * string without its quotes, a number as written, {@code true}/{@code false}; a JSON null, an object or an array is
 * not a scalar (absent, so NULL in SQL). {@code lists} holds each array's scalar elements joined by commas (what
 * the jobs store for tags); a scalar stands for a one-element array, as in JSON_QUERY's conditional wrapper.
 *
 * <p>The problems, checked in this order: {@code empty record} (a tombstone), {@code oversized} (more than
 * {@code maxChars} characters), {@code invalid UTF-8}, {@code invalid JSON} (not exactly one JSON object).
 *
 * <p>A scalar function rather than a table function: a LATERAL TABLE call carries a correlation variable that
 * differs each time the planner expands a view, so a view read by two INSERTs (Kafka and Iceberg) was no longer
 * recognised as shared, and its dedup and joins ran twice. The planner may call this once per field read; all
 * calls for one record after the first cost a lookup of the last parse.
 */
public class JsonObjectFields extends ScalarFunction {
    private static final StringData EMPTY = StringData.fromString("empty record");
    private static final StringData OVERSIZED = StringData.fromString("oversized");
    private static final StringData INVALID_UTF8 = StringData.fromString("invalid UTF-8");
    private static final StringData INVALID_JSON = StringData.fromString("invalid JSON");

    public @DataTypeHint(value = "ROW<problem STRING, fields MAP<STRING, STRING>, lists MAP<STRING, STRING>>", bridgedTo = RowData.class)
    RowData eval(byte[] payload, int maxChars) {
        if (payload == null) {
            return GenericRowData.of(EMPTY, null, null);
        }
        ParsedRecord record = ParsedRecord.of(payload);
        // characters are at most bytes: only a record longer than maxChars bytes needs counting
        if (payload.length > maxChars && record.chars() > maxChars) {
            return GenericRowData.of(OVERSIZED, null, null);
        } else if (!record.utf8) {
            return GenericRowData.of(INVALID_UTF8, null, null);
        } else if (record.scalars == null) {
            return GenericRowData.of(INVALID_JSON, null, null);
        }
        return record.row;
    }
}
