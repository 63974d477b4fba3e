package io.twitchpipeline.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.data.StringData;

/**
 * One top-level scalar of a record holding a JSON object, as JSON_VALUE(payload, '$.name') returns it, or NULL
 * (absent, JSON null, an object or array, or the bytes are not one JSON object in UTF-8).
 *
 * <p>For the event-time column of a source table, where the watermark is declared; the record is parsed once
 * for this and {@link JsonObjectFields} together ({@link ParsedRecord}).
 */
public class JsonScalar extends ScalarFunction {
    public @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eval(byte[] payload, String name) {
        if (payload == null) {
            return null;
        }
        ParsedRecord record = ParsedRecord.of(payload);
        return record.utf8 ? record.scalarsByName.get(name) : null;
    }
}
