import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads a whole topic with Kafka's own Java client (read_committed) and prints one line per record:
 * partition, offset, base64 key, base64 value. Tests use it to prove that what redtail writes (compressed with
 * lz4, snappy, ...) decodes with the reference client, not only with kafkajs.
 *
 * Usage: java -cp <dir>:<kafka libs>/* CommittedReader BROKERS TOPIC
 */
public final class CommittedReader {
  public static void main(String[] args) {
    Properties p = new Properties();
    p.put("bootstrap.servers", args[0]);
    p.put("isolation.level", "read_committed");
    p.put("enable.auto.commit", "false");
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    Base64.Encoder b64 = Base64.getEncoder();
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
      List<TopicPartition> parts =
          c.partitionsFor(args[1]).stream()
              .map(i -> new TopicPartition(i.topic(), i.partition()))
              .collect(Collectors.toList());
      c.assign(parts);
      c.seekToBeginning(parts);
      var end = c.endOffsets(parts);
      long deadline = System.currentTimeMillis() + 60_000;
      while (parts.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("timed out reading " + args[1]);
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
          String k = r.key() == null ? "-" : b64.encodeToString(r.key());
          String v = r.value() == null ? "-" : b64.encodeToString(r.value());
          System.out.println(r.partition() + " " + r.offset() + " " + k + " " + v);
        }
      }
    }
  }
}
