package wasmpipe.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams contender: consumes the input topic, applies identity or
 * redact (mask and drop JSON field paths, as wasmpipe's redact plugin does),
 * and produces to the output topic; a value that is not JSON goes to the
 * dead-letter topic. Headers travel with the record (Kafka Streams keeps
 * them).
 *
 * <p>Two stateful topologies match wasmpipe's examples of the same names,
 * output for output: count ({@code groupByKey().count()}, every update
 * emitted, the count in decimal) and window-sum (the JSON field
 * {@code amount} summed per key in one-minute tumbling windows without
 * grace, {@code suppress(untilWindowCloses)}, each window emitted once as
 * {@code {"start":…,"end":…,"sum":…,"count":…}}). Record caching is off in
 * both, as wasmpipe has none: each update is processed and forwarded as it
 * comes.
 *
 * <p>After MASK and DROP come client properties as KEY=VALUE (Kafka Streams'
 * own "producer." and "consumer." prefixes apply), and optionally
 * warmup=TOPIC:COUNT: the same topology first drains COUNT records of TOPIC
 * (to TOPIC-out) under another application id, in this JVM, so that the
 * measured run starts with the JIT warm.
 *
 * <pre>
 * Contender BOOTSTRAP INPUT OUTPUT DLQ identity|redact|count|window-sum at_least_once|exactly_once_v2 THREADS APP_ID MASK DROP [KEY=VALUE...]
 * </pre>
 */
public final class Contender {
  private static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] args) throws Exception {
    if (args.length < 8) {
      System.err.println(
          "usage: Contender BOOTSTRAP INPUT OUTPUT DLQ identity|redact GUARANTEE THREADS APP_ID MASK DROP [KEY=VALUE...]");
      System.exit(2);
    }
    String bootstrap = args[0], input = args[1], output = args[2], dlq = args[3];
    String transform = args[4], guarantee = args[5];
    int threads = Integer.parseInt(args[6]);
    String appId = args[7];
    List<String[]> mask = paths(args.length > 8 ? args[8] : "");
    List<String[]> drop = paths(args.length > 9 ? args[9] : "");

    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    // One broker on loopback: replication 1 for the internal topics.
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    String warmup = null;
    for (int i = 10; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      if (kv[0].equals("warmup")) warmup = kv[1];
      else props.put(kv[0], kv[1]);
    }

    if (warmup != null) {
      String[] tc = warmup.split(":", 2);
      long count = Long.parseLong(tc[1]);
      java.util.concurrent.atomic.AtomicLong seen = new java.util.concurrent.atomic.AtomicLong();
      Properties warm = (Properties) props.clone();
      warm.put(StreamsConfig.APPLICATION_ID_CONFIG, appId + "-warmup");
      KafkaStreams first =
          new KafkaStreams(topology(tc[0], tc[0] + "-out", tc[0] + "-out", transform, mask, drop, seen), warm);
      first.start();
      while (seen.get() < count) Thread.sleep(20);
      first.close();
      first.cleanUp();
    }

    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    KafkaStreams streams =
        new KafkaStreams(topology(input, output, dlq, transform, mask, drop, null), props);
    CountDownLatch done = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      done.countDown();
    }));
    streams.start();
    done.await();
  }

  /** Identity or redact from INPUT to OUTPUT (failures to DLQ), counting into seen if given. */
  static org.apache.kafka.streams.Topology topology(
      String input, String output, String dlq, String transform,
      List<String[]> mask, List<String[]> drop, java.util.concurrent.atomic.AtomicLong seen) {
    StreamsBuilder builder = new StreamsBuilder();
    KStream<byte[], byte[]> in =
        builder.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
    if (seen != null) in = in.peek((k, v) -> seen.incrementAndGet());
    Produced<byte[], byte[]> bytes = Produced.with(Serdes.ByteArray(), Serdes.ByteArray());
    if (transform.equals("identity")) {
      in.to(output, bytes);
    } else if (transform.equals("redact")) {
      // A value that is not JSON goes, as it came, to the dead-letter topic.
      in.mapValues(v -> v == null ? new Result(null, false) : redact(v, mask, drop))
          .split()
          .branch(
              (k, r) -> r.failed(),
              Branched.withConsumer(s -> s.mapValues(Result::value).to(dlq, bytes)))
          .defaultBranch(Branched.withConsumer(s -> s.mapValues(Result::value).to(output, bytes)));
    } else if (transform.equals("count")) {
      in.filter((k, v) -> k != null)
          .groupByKey(Grouped.with(Serdes.ByteArray(), Serdes.ByteArray()))
          .count(Materialized.<byte[], Long, KeyValueStore<Bytes, byte[]>>as("counts")
              .withKeySerde(Serdes.ByteArray())
              .withValueSerde(Serdes.Long())
              .withCachingDisabled())
          .toStream()
          .mapValues(c -> Long.toString(c).getBytes(StandardCharsets.UTF_8))
          .to(output, bytes);
    } else if (transform.equals("window-sum")) {
      in.groupByKey(Grouped.with(Serdes.ByteArray(), Serdes.ByteArray()))
          .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ZERO))
          .aggregate(
              () -> new byte[16],
              (k, v, agg) -> add(agg, amount(v)),
              Materialized.<byte[], byte[], WindowStore<Bytes, byte[]>>as("sums")
                  .withKeySerde(Serdes.ByteArray())
                  .withValueSerde(Serdes.ByteArray())
                  .withCachingDisabled())
          .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
          .toStream()
          .map((w, agg) -> KeyValue.pair(w.key(), window(w.window().start(), w.window().end(), agg)))
          .to(output, bytes);
    } else {
      throw new IllegalArgumentException(
          "transform: identity, redact, count or window-sum, not " + transform);
    }
    return builder.build();
  }

  /** The number at {@code amount} of a JSON value. */
  static double amount(byte[] value) {
    try {
      return JSON.readTree(value).get("amount").asDouble();
    } catch (Exception e) {
      throw new IllegalArgumentException("no number at amount", e);
    }
  }

  /** A window's aggregate (sum as a double, count as a long) with one more number. */
  static byte[] add(byte[] agg, double n) {
    ByteBuffer b = ByteBuffer.wrap(agg);
    double sum = b.getDouble(0) + n;
    long count = b.getLong(8) + 1;
    return ByteBuffer.allocate(16).putDouble(sum).putLong(count).array();
  }

  static byte[] window(long start, long end, byte[] agg) {
    ByteBuffer b = ByteBuffer.wrap(agg);
    ObjectNode doc = JSON.createObjectNode();
    doc.put("start", start).put("end", end).put("sum", b.getDouble(0)).put("count", b.getLong(8));
    try {
      return JSON.writeValueAsBytes(doc);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  /** A redacted value, or the input value of a record that failed. */
  record Result(byte[] value, boolean failed) {}

  static List<String[]> paths(String text) {
    List<String[]> out = new ArrayList<>();
    for (String p : text.split(",")) {
      if (!p.isBlank()) out.add(p.trim().split("\\.", -1));
    }
    return out;
  }

  static Result redact(byte[] value, List<String[]> mask, List<String[]> drop) {
    try {
      JsonNode doc = JSON.readTree(value);
      if (doc == null) return new Result(value, true);
      for (String[] p : mask) parents(doc, p, 0, true);
      for (String[] p : drop) parents(doc, p, 0, false);
      return new Result(JSON.writeValueAsBytes(doc), false);
    } catch (Exception e) {
      return new Result(value, true);
    }
  }

  /** Masks (or drops) wherever path ends in node, as redact does. */
  static void parents(JsonNode node, String[] path, int at, boolean mask) {
    String head = path[at];
    if (at == path.length - 1) {
      if (node instanceof ObjectNode o) {
        if (mask && o.has(head)) o.set(head, TextNode.valueOf("***"));
        if (!mask) {
          if (head.equals("*")) o.removeAll();
          else o.remove(head);
        }
      } else if (node instanceof ArrayNode a && mask) {
        for (int i = 0; i < a.size(); i++) {
          if (head.equals("*") || head.equals(Integer.toString(i))) a.set(i, TextNode.valueOf("***"));
        }
      }
      return;
    }
    if (node instanceof ObjectNode o) {
      if (head.equals("*")) o.elements().forEachRemaining(c -> parents(c, path, at + 1, mask));
      else if (o.has(head)) parents(o.get(head), path, at + 1, mask);
    } else if (node instanceof ArrayNode a) {
      if (head.equals("*")) a.elements().forEachRemaining(c -> parents(c, path, at + 1, mask));
      else {
        try {
          int i = Integer.parseInt(head);
          if (i >= 0 && i < a.size()) parents(a.get(i), path, at + 1, mask);
        } catch (NumberFormatException e) {
          // not an index: nothing there
        }
      }
    }
  }

  private Contender() {}
}
