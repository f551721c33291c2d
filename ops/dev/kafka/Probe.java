import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Readiness probe used by ops/dev/services: exits 0 once a client can create a topic, commit a
 * transaction that writes to it, and read the committed record back with read_committed.
 *
 * <p>Usage: {@code java -cp "libs/*:probe" Probe BOOTSTRAP [TOPIC] [TIMEOUT_SECONDS]}. Exits 1
 * with the error on stderr otherwise. Running it also makes the broker create its transaction
 * state topic, so the first transactional producer of a test does not pay for that.
 */
public final class Probe {
    private Probe() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Probe BOOTSTRAP [TOPIC] [TIMEOUT_SECONDS]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args.length > 1 ? args[1] : "ops-services-probe";
        long timeoutMs = TimeUnit.SECONDS.toMillis(args.length > 2 ? Long.parseLong(args[2]) : 60);
        long started = System.nanoTime();
        try {
            createTopic(bootstrap, topic, timeoutMs);
            String nonce = UUID.randomUUID().toString();
            RecordMetadata written = produceTransactionally(bootstrap, topic, nonce, timeoutMs);
            readBack(bootstrap, written, nonce, timeoutMs);
            long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
            System.out.printf(
                    "probe ok: topic %s created, transaction committed at %s-%d@%d, read back (%d ms)%n",
                    topic, written.topic(), written.partition(), written.offset(), tookMs);
        } catch (Exception e) {
            Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            System.err.println("probe failed: " + cause);
            System.exit(1);
        }
    }

    private static void createTopic(String bootstrap, String topic, long timeoutMs) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("client.id", "ops-services-probe-admin");
        props.put("default.api.timeout.ms", (int) timeoutMs);
        props.put("request.timeout.ms", (int) Math.min(timeoutMs, 15_000));
        try (Admin admin = Admin.create(props)) {
            // one small partition, kept short: the probe writes one record per `up`
            NewTopic probeTopic = new NewTopic(topic, 1, (short) 1)
                    .configs(Map.of("retention.ms", "3600000", "segment.bytes", "1048576"));
            try {
                admin.createTopics(List.of(probeTopic)).all().get(timeoutMs, TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
    }

    private static RecordMetadata produceTransactionally(
            String bootstrap, String topic, String nonce, long timeoutMs) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("client.id", "ops-services-probe-producer");
        props.put("transactional.id", "ops-services-probe");
        props.put("acks", "all");
        props.put("max.block.ms", (int) timeoutMs);
        props.put("delivery.timeout.ms", (int) Math.max(timeoutMs, 30_000));
        props.put("request.timeout.ms", (int) Math.min(timeoutMs, 15_000));
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            RecordMetadata written = producer.send(new ProducerRecord<>(topic, "probe", nonce)).get();
            producer.commitTransaction();
            return written;
        }
    }

    private static void readBack(String bootstrap, RecordMetadata written, String nonce, long timeoutMs) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("client.id", "ops-services-probe-consumer");
        props.put("isolation.level", "read_committed");
        props.put("enable.auto.commit", "false");
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        TopicPartition partition = new TopicPartition(written.topic(), written.partition());
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(List.of(partition));
            consumer.seek(partition, written.offset());
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    if (record.offset() == written.offset()) {
                        if (!nonce.equals(record.value())) {
                            throw new IllegalStateException("read back an unexpected value at offset "
                                    + record.offset() + ": " + record.value());
                        }
                        return;
                    }
                }
            }
        }
        throw new IllegalStateException("the committed record was not read back within " + timeoutMs + " ms");
    }
}
