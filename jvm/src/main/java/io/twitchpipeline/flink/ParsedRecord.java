package io.twitchpipeline.flink;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.data.GenericMapData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;

/**
 * A Kafka record's bytes parsed once as one JSON object: whether the bytes are UTF-8, whether they are exactly
 * one JSON object, and its top-level scalars and arrays by name.
 *
 * <p>The planner evaluates a record's parse in several places: the event-time column in the source's watermark
 * generator and again in its projection, and the fields in the valid branch and again in the dead-letter branch,
 * possibly once per field read. All of them run in the task's thread one after the other for the same record, so
 * {@link #of} keeps the last parse per thread and hands it out again for the same bytes: one parse per record.
 */
final class ParsedRecord {
    private static final JsonFactory JSON = new JsonFactory();
    private static final ThreadLocal<ParsedRecord> LAST = new ThreadLocal<>();

    final byte[] bytes;
    final boolean utf8;
    /** NULL when the bytes are not exactly one JSON object. */
    final MapData scalars;
    final MapData lists;
    final Map<String, StringData> scalarsByName;
    /** Each top-level field's JSON type as JSON Schema names it (string, integer, number, boolean, array, object, null). */
    final Map<String, String> types;
    /** What {@link JsonObjectFields} returns for a usable object: built once, handed out for every field read. */
    final RowData row;

    private ParsedRecord(byte[] bytes, boolean utf8, Map<StringData, StringData> scalars, Map<StringData, StringData> lists,
                         Map<String, StringData> scalarsByName, Map<String, String> types) {
        this.bytes = bytes;
        this.utf8 = utf8;
        this.scalars = scalars == null ? null : new GenericMapData(scalars);
        this.lists = lists == null ? null : new GenericMapData(lists);
        this.scalarsByName = scalarsByName;
        this.types = types;
        this.row = GenericRowData.of(null, this.scalars, this.lists);
    }

    /** The parse of {@code bytes} (not null): the last one of this thread when the bytes are the same. */
    static ParsedRecord of(byte[] bytes) {
        ParsedRecord last = LAST.get();
        if (last != null && (last.bytes == bytes || Arrays.equals(last.bytes, bytes))) {
            return last;
        }
        ParsedRecord parsed = parse(bytes);
        LAST.set(parsed);
        return parsed;
    }

    /** As Flink's CHAR_LENGTH counts the decoded text: a malformed sequence decodes to one replacement character. */
    int chars() {
        String text = new String(bytes, StandardCharsets.UTF_8);
        return text.codePointCount(0, text.length());
    }

    private static ParsedRecord parse(byte[] bytes) {
        Map<StringData, StringData> scalars = new HashMap<>();
        Map<StringData, StringData> lists = new HashMap<>();
        Map<String, StringData> byName = new HashMap<>();
        Map<String, String> types = new HashMap<>();
        boolean object;
        try (JsonParser parser = JSON.createParser(bytes)) {
            object = parser.nextToken() == JsonToken.START_OBJECT;
            while (object && parser.nextToken() == JsonToken.FIELD_NAME) {
                String name = parser.getCurrentName();
                StringData key = StringData.fromString(name);
                JsonToken value = parser.nextToken();
                // a repeated name keeps its last value, as JSON_VALUE does
                scalars.remove(key);
                lists.remove(key);
                byName.remove(name);
                types.put(name, typeName(value));
                if (value == JsonToken.START_ARRAY) {
                    lists.put(key, StringData.fromString(joinScalars(parser)));
                } else if (value == JsonToken.START_OBJECT) {
                    parser.skipChildren();
                } else if (value != JsonToken.VALUE_NULL) {
                    StringData text = StringData.fromString(parser.getText());
                    scalars.put(key, text);
                    lists.put(key, text);
                    byName.put(name, text);
                }
            }
            // The object is closed here (anything else threw); trailing content means a glued or broken record.
            object = object && parser.nextToken() == null;
        } catch (IOException e) {
            object = false;
        }
        return object ? new ParsedRecord(bytes, validUtf8(bytes), scalars, lists, byName, types)
                      : new ParsedRecord(bytes, validUtf8(bytes), null, null, Map.of(), Map.of());
    }

    private static String typeName(JsonToken token) {
        switch (token) {
            case START_ARRAY: return "array";
            case START_OBJECT: return "object";
            case VALUE_STRING: return "string";
            case VALUE_NUMBER_INT: return "integer";
            case VALUE_NUMBER_FLOAT: return "number";
            case VALUE_TRUE:
            case VALUE_FALSE: return "boolean";
            default: return "null";
        }
    }

    /** The array's scalar elements, comma-joined; nested objects and arrays are left out. */
    private static String joinScalars(JsonParser parser) throws IOException {
        StringBuilder joined = new StringBuilder();
        for (JsonToken token = parser.nextToken(); token != JsonToken.END_ARRAY; token = parser.nextToken()) {
            if (token == JsonToken.START_OBJECT || token == JsonToken.START_ARRAY) {
                parser.skipChildren();
                continue;
            }
            if (joined.length() > 0) {
                joined.append(',');
            }
            joined.append(token == JsonToken.VALUE_NULL ? "null" : parser.getText());
        }
        return joined.toString();
    }

    private static boolean validUtf8(byte[] bytes) {
        for (byte b : bytes) {
            if (b < 0) {  // not all ASCII: the JDK's strict decoder judges
                try {
                    StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes));
                    return true;
                } catch (CharacterCodingException e) {
                    return false;
                }
            }
        }
        return true;
    }
}
