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

    /**
     * {@code yyyy-MM-ddTHH:mm:ss[.f]Z} (1 to 9 fraction digits, kept to the millisecond), the form of the producers
     * and of Flink's own JSON writer, read directly; any other text through Flink's parser, NULL if it is none.
     */
    static TimestampData parse(String text) {
        int length = text.length();
        if (length >= 20 && length <= 30 && length != 21 && text.charAt(4) == '-' && text.charAt(7) == '-' && text.charAt(10) == 'T'
                && text.charAt(13) == ':' && text.charAt(16) == ':' && text.charAt(length - 1) == 'Z' && (length == 20 || text.charAt(19) == '.')) {
            int year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
            int hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
            int fraction = length == 20 ? 0 : digits(text, 20, length - 21);
            if ((year | month | day | hour | minute | second | fraction) >= 0) {
                int millis = length == 20 ? 0 : fraction / POWERS_OF_TEN[Math.max(0, length - 24)] * POWERS_OF_TEN[Math.max(0, 24 - length)];
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

    private static final int[] POWERS_OF_TEN = {1, 10, 100, 1_000, 10_000, 100_000, 1_000_000};

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
