package io.twitchpipeline.flink;

import java.time.DateTimeException;
import java.time.LocalDateTime;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.utils.DateTimeUtils;

/**
 * A top-level field of a record holding a JSON object, read as a timestamp: what
 * {@code TO_TIMESTAMP(REPLACE(REPLACE(JSON_VALUE(payload, '$.name'), 'T', ' '), 'Z', ''))} gives, NULL included
 * (absent, not a scalar, not a timestamp, or the bytes are not one JSON object in UTF-8).
 *
 * <p>For the event-time column of a source table, where the watermark is declared, and the other timestamps of
 * an event. Flink's TO_TIMESTAMP parses with a java.time formatter of optional sections, which measured as the
 * largest cost of the job once the JSON was parsed once: the producers' own form ({@code 2026-01-01T00:00:00.000Z})
 * is read directly here, anything else goes through Flink's parser as before. The record is parsed once for all
 * functions together ({@link ParsedRecord}).
 */
public class JsonTimestamp extends ScalarFunction {
    public @DataTypeHint("TIMESTAMP(3)") TimestampData eval(byte[] payload, String name) {
        if (payload == null) {
            return null;
        }
        ParsedRecord record = ParsedRecord.of(payload);
        StringData value = record.utf8 ? record.scalarsByName.get(name) : null;
        return value == null ? null : parse(value.toString());
    }

    static TimestampData parse(String text) {
        if (text.length() == 24 && text.charAt(4) == '-' && text.charAt(7) == '-' && text.charAt(10) == 'T' && text.charAt(13) == ':'
                && text.charAt(16) == ':' && text.charAt(19) == '.' && text.charAt(23) == 'Z') {
            int year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
            int hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2), millis = digits(text, 20, 3);
            if ((year | month | day | hour | minute | second | millis) >= 0) {
                try {
                    return TimestampData.fromLocalDateTime(LocalDateTime.of(year, month, day, hour, minute, second, millis * 1_000_000));
                } catch (DateTimeException e) {
                    // out of range (say 2026-02-30): Flink's parser decides, as it always did
                }
            }
        }
        try {
            return DateTimeUtils.parseTimestampData(text.replace("T", " ").replace("Z", ""));
        } catch (DateTimeException e) {
            return null;
        }
    }

    /** The decimal number of {@code count} ASCII digits at {@code from}, or -1. */
    private static int digits(String text, int from, int count) {
        int value = 0;
        for (int i = from; i < from + count; i++) {
            char c = text.charAt(i);
            if (c < '0' || c > '9') {
                return -1;
            }
            value = value * 10 + (c - '0');
        }
        return value;
    }
}
