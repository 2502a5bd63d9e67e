import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

/** Exits 0 once the broker at args[0] answers a metadata request and lists itself as alive. */
public final class KafkaReady {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        try (Admin admin = Admin.create(props)) {
            DescribeClusterResult cluster = admin.describeCluster();
            int brokers = cluster.nodes().get(5, TimeUnit.SECONDS).size();
            String id = cluster.clusterId().get(5, TimeUnit.SECONDS);
            if (brokers == 0) {
                System.err.println("no alive broker yet");
                System.exit(1);
            }
            System.out.println("cluster " + id + ": " + brokers + " broker(s)");
        }
    }
}
