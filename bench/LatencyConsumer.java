// bench:kafka's end-to-end latency probe: Kafka's own Java consumer (read_committed), so that what is measured is
// the producer's path to visibility, not a JavaScript consumer's decoding (kafkajs decodes every record of a fetch in
// JS on the bench's event loop; at tens of thousands of records/s its own queueing showed up in the figures).
//
// Run from source (Java 11+ launches a single file without javac):
//   java -cp '<kafka libs>/*' bench/LatencyConsumer.java BROKERS TOPIC[,TOPIC...]
// Protocol on stdin/stdout, one line each:
//   it prints `ready` once every partition of the topics is assigned and positioned at its end;
//   `begin` on stdin: from now on, count records whose stamp is not older than this moment;
//   `stop` on stdin: print one JSON line {"samples":N,"p50":..,"p90":..,"p99":..,"p999":..,"max":..} and exit.
// A record's stamp is the number that starts its JSON `value` string, up to the first ';' (bench/kafka.ts's
// `stamped()`): epoch milliseconds with a fraction, the same clock as Instant.now() here.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class LatencyConsumer {
  private static final byte[] VALUE_FIELD = "\"value\":\"".getBytes(StandardCharsets.US_ASCII);

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: LatencyConsumer BROKERS TOPIC[,TOPIC...]");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("isolation.level", "read_committed");
    props.put("enable.auto.commit", "false");
    // Answer a fetch as soon as anything is visible; 20 ms as the kafkajs probe it replaces.
    props.put("fetch.max.wait.ms", "20");
    props.put("key.deserializer", ByteArrayDeserializer.class.getName());
    props.put("value.deserializer", ByteArrayDeserializer.class.getName());

    AtomicBoolean stop = new AtomicBoolean(false);
    final double[] from = {Double.POSITIVE_INFINITY};
    Thread control =
        new Thread(
            () -> {
              try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
                String line;
                while ((line = in.readLine()) != null) {
                  if (line.equals("begin")) synchronized (from) { from[0] = nowMs(); }
                  else if (line.equals("stop")) break;
                }
              } catch (Exception e) {
                // stdin closed: stop as if told to.
              }
              stop.set(true);
            });
    control.setDaemon(true);
    control.start();

    double[] samples = new double[1 << 16];
    int n = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> parts = new ArrayList<>();
      for (String topic : args[1].split(",")) {
        for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30)))
          parts.add(new TopicPartition(topic, p.partition()));
      }
      consumer.assign(parts);
      consumer.seekToEnd(parts);
      for (TopicPartition tp : parts) consumer.position(tp, Duration.ofSeconds(30));
      System.out.println("ready");
      System.out.flush();
      while (!stop.get()) {
        ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(50));
        double at = nowMs();
        double since;
        synchronized (from) { since = from[0]; }
        for (ConsumerRecord<byte[], byte[]> r : records) {
          double t = stampOf(r.value());
          if (Double.isNaN(t) || t < since) continue;
          if (n == samples.length) samples = Arrays.copyOf(samples, n * 2);
          samples[n++] = at - t;
        }
      }
    }
    Arrays.sort(samples, 0, n);
    System.out.printf(
        "{\"samples\":%d,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}%n",
        n, pct(samples, n, 50), pct(samples, n, 90), pct(samples, n, 99), pct(samples, n, 99.9),
        n == 0 ? Double.NaN : samples[n - 1]);
  }

  private static double nowMs() {
    Instant i = Instant.now();
    return i.getEpochSecond() * 1000.0 + i.getNano() / 1e6;
  }

  /** The same rank rule as bench/kafka.ts's `percentile`. */
  private static double pct(double[] sorted, int n, double p) {
    if (n == 0) return Double.NaN;
    return sorted[Math.min(n - 1, (int) Math.floor((p / 100.0) * n))];
  }

  /** The stamp at the start of the JSON `value` string, or NaN when the record carries none. */
  private static double stampOf(byte[] v) {
    if (v == null) return Double.NaN;
    outer:
    for (int i = 0; i + VALUE_FIELD.length <= v.length; i++) {
      for (int j = 0; j < VALUE_FIELD.length; j++) if (v[i + j] != VALUE_FIELD[j]) continue outer;
      int start = i + VALUE_FIELD.length;
      int end = start;
      while (end < v.length && v[end] != ';' && v[end] != '"') end++;
      if (end == v.length || v[end] != ';') return Double.NaN;
      try {
        return Double.parseDouble(new String(v, start, end - start, StandardCharsets.US_ASCII));
      } catch (NumberFormatException e) {
        return Double.NaN;
      }
    }
    return Double.NaN;
  }
}
