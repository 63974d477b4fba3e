// Prints every transactional id the Kafka broker knows, one per line (the Admin API's ListTransactions, which
// confluent-kafka's Python AdminClient does not offer).
//
// Run from source (JEP 330): java -cp "<the broker's jars>/*" TransactionalIds.java BOOTSTRAP_SERVERS

import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TransactionListing;

public class TransactionalIds {
    public static void main(String[] args) throws Exception {
        Properties properties = new Properties();
        properties.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(properties)) {
            for (TransactionListing listing : admin.listTransactions().all().get()) {
                System.out.println(listing.transactionalId());
            }
        }
    }
}
