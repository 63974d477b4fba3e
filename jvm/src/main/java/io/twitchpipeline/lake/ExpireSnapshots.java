package io.twitchpipeline.lake;

import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.Snapshot;
import org.apache.iceberg.Table;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.catalog.Namespace;
import org.apache.iceberg.catalog.TableIdentifier;

/**
 * Expires the old snapshots of every table of one lake namespace, with Iceberg's own {@code ExpireSnapshots}.
 *
 * <p>The streaming sinks commit a snapshot a second, and each commit's metadata file lists every snapshot the table
 * still has (~1.1 KB each): unexpired, that file is ~4 MB after an hour and rewritten every second. pyiceberg cannot do
 * this in the main environment (PyFlink caps pyarrow, which caps pyiceberg at 0.8, which has no expiry); Iceberg's
 * Java action also deletes the files only the expired snapshots referenced (manifest lists, manifests, data files a
 * compaction replaced), and retries a commit that loses to a running job's commit on the table as it now is.
 *
 * <p>Usage: {@code ExpireSnapshots <catalog> <namespace> <older-than-epoch-ms> <retain-last>}, the catalog's
 * properties (Iceberg's, as Flink's {@code CREATE CATALOG} takes them) as a properties file on standard input, so
 * that no key shows in the process list. Prints one JSON object per table.
 */
public final class ExpireSnapshots {
    private ExpireSnapshots() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 4) {
            System.err.println("usage: ExpireSnapshots <catalog> <namespace> <older-than-epoch-ms> <retain-last> < catalog.properties");
            System.exit(2);
        }
        Properties properties = new Properties();
        properties.load(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Map<String, String> options = new HashMap<>();
        properties.stringPropertyNames().forEach(key -> options.put(key, properties.getProperty(key)));
        Configuration hadoop = new Configuration();
        // the local lake's files through the cluster's file system (no checksum file beside a metadata file)
        hadoop.set("fs.file.impl", "io.twitchpipeline.flink.LocalFileSystem");
        Catalog catalog = CatalogUtil.buildIcebergCatalog(args[0], options, hadoop);
        long olderThan = Long.parseLong(args[2]);
        int retainLast = Integer.parseInt(args[3]);
        boolean failed = false;
        for (TableIdentifier id : catalog.listTables(Namespace.of(args[1]))) {
            // One table that fails (the expiry's commit retries ran out) does not hold up the others' expiry.
            try {
                Table table = catalog.loadTable(id);
                Set<Long> before = ids(table);
                table.expireSnapshots().expireOlderThan(olderThan).retainLast(retainLast).commit();
                table.refresh();
                Set<Long> after = ids(table);
                before.removeAll(after);
                System.out.printf("{\"table\": \"%s\", \"expired\": %d, \"snapshots\": %d}%n", id, before.size(), after.size());
            } catch (RuntimeException e) {
                failed = true;
                System.out.printf("{\"table\": \"%s\", \"error\": \"%s\"}%n", id, json(e.toString()));
            }
        }
        System.exit(failed ? 1 : 0);
    }

    private static String json(String text) {
        return text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ").replace("\r", " ").replace("\t", " ");
    }

    private static Set<Long> ids(Table table) {
        Set<Long> ids = new HashSet<>();
        for (Snapshot snapshot : table.snapshots()) {
            ids.add(snapshot.snapshotId());
        }
        return ids;
    }
}
