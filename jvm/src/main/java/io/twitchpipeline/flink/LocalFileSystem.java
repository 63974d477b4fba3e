package io.twitchpipeline.flink;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's {@code file:} file system for the local Iceberg lake, without a process per file.
 *
 * <p>Iceberg's HadoopFileIO writes the local lake through Hadoop's default {@code LocalFileSystem}: a checksum
 * file beside every file, and a permission set on both. Without Hadoop's native library (it is not on Maven
 * Central) Hadoop sets a permission by running {@code chmod}: JFR on the TaskManager of the end-to-end benchmark
 * counted 611 processes started in 30 s, 20 a second, each Iceberg commit on the task thread of the operator it
 * is chained to (~300 ms a commit). This one is Hadoop's raw local file system (no checksum files: Parquet,
 * Avro and Iceberg's metadata carry their own) setting permissions through java.nio. Registered as
 * {@code fs.file.impl} through {@code flink.hadoop.fs.file.impl} in the cluster's configuration.
 */
public class LocalFileSystem extends RawLocalFileSystem {
    /** Hadoop's raw local file system leaves the scheme unimplemented; Iceberg's source asks for it when planning a scan. */
    @Override
    public String getScheme() {
        return "file";
    }

    @Override
    public void setPermission(Path p, FsPermission permission) throws IOException {
        String symbols = permission.getUserAction().SYMBOL + permission.getGroupAction().SYMBOL + permission.getOtherAction().SYMBOL;
        Files.setPosixFilePermissions(pathToFile(p).toPath(), PosixFilePermissions.fromString(symbols));
    }
}
