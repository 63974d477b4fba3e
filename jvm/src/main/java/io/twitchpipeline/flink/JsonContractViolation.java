package io.twitchpipeline.flink;

import java.util.Arrays;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * Why a record breaks its topic's data contract, or NULL: the first required field that is missing or not of its
 * JSON type, as {@code missing or invalid <field>}. The record is the one {@link JsonObjectFields} parsed (no
 * second parse); a record that is no JSON object at all is that function's problem, so NULL here.
 *
 * <p>{@code spec} is {@code field:type,field:type|type,...}: the required fields of the topic's JSON Schema in
 * its order, with their JSON Schema types ({@code integer} also satisfies {@code number}). The jobs render it
 * from the schema files (connectors.catalog.contract_spec), so the contract is declared once.
 *
 * <p>Why types and not only presence: JSON_VALUE, and json_object_fields after it, return a number's text, so an
 * event whose ids were JSON numbers passed as valid with ids such as '32' (found by `twitch-pipeline chaos`).
 */
public class JsonContractViolation extends ScalarFunction {
    private transient String compiledSpec;
    private transient String[] names;
    private transient String[] reasons;
    private transient String[][] allowed;

    public String eval(byte[] payload, String spec) {
        if (payload == null || spec == null) {
            return null;
        }
        ParsedRecord record = ParsedRecord.of(payload);
        if (record.scalars == null) {
            return null;
        }
        if (!spec.equals(compiledSpec)) {
            compile(spec);
        }
        for (int i = 0; i < names.length; i++) {
            String type = record.types.get(names[i]);
            if (type == null || !accepts(allowed[i], type)) {
                return reasons[i];
            }
        }
        return null;
    }

    private static boolean accepts(String[] allowed, String type) {
        for (String want : allowed) {
            if (want.equals(type) || (want.equals("number") && type.equals("integer"))) {
                return true;
            }
        }
        return false;
    }

    private void compile(String spec) {
        String[] entries = spec.isEmpty() ? new String[0] : spec.split(",");
        names = new String[entries.length];
        reasons = new String[entries.length];
        allowed = new String[entries.length][];
        for (int i = 0; i < entries.length; i++) {
            int colon = entries[i].lastIndexOf(':');
            if (colon <= 0) {
                throw new IllegalArgumentException("contract spec entry is not field:type: " + entries[i] + " in " + spec);
            }
            names[i] = entries[i].substring(0, colon);
            reasons[i] = "missing or invalid " + names[i];
            allowed[i] = entries[i].substring(colon + 1).split("\\|");
            if (Arrays.asList(allowed[i]).contains("")) {
                throw new IllegalArgumentException("contract spec entry has an empty type: " + entries[i]);
            }
        }
        compiledSpec = spec;
    }
}
