/* FileConnectors.java - Kafka's FileStream connectors (connect-file) as ConnectTest runs them.
 * Maven Central has no connect-file 4.4.0; its newest, 4.3.1, copies files on the 4.4.0 Connect
 * API but reports its version through org.apache.kafka.common.utils.AppInfoParser, which
 * kafka-clients 4.4 moved (to common.utils.internals): these subclasses only answer version()
 * themselves, the copying is connect-file's. Found by the worker's ServiceLoader plugin discovery
 * (test resources' META-INF/services). */
package io.strata.it;

import org.apache.kafka.common.utils.internals.AppInfoParser;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.file.FileStreamSinkConnector;
import org.apache.kafka.connect.file.FileStreamSinkTask;
import org.apache.kafka.connect.file.FileStreamSourceConnector;
import org.apache.kafka.connect.file.FileStreamSourceTask;

public final class FileConnectors {
    private FileConnectors() {}

    public static class Source extends FileStreamSourceConnector {
        @Override
        public String version() {
            return AppInfoParser.getVersion();
        }

        @Override
        public Class<? extends Task> taskClass() {
            return SourceTask.class;
        }
    }

    public static class SourceTask extends FileStreamSourceTask {
        @Override
        public String version() {
            return AppInfoParser.getVersion();
        }
    }

    public static class Sink extends FileStreamSinkConnector {
        @Override
        public String version() {
            return AppInfoParser.getVersion();
        }

        @Override
        public Class<? extends Task> taskClass() {
            return SinkTask.class;
        }
    }

    public static class SinkTask extends FileStreamSinkTask {
        @Override
        public String version() {
            return AppInfoParser.getVersion();
        }
    }
}
