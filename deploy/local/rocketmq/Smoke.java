// Stack check for the local RocketMQ (not part of the service): timer-message lateness and
// consumer retry -> DLQ with autoCreateTopicEnable=false. Needs a JDK (single-file launch):
//   deploy/local/mqadmin.sh updateTopic -b 127.0.0.1:10911 -t STACK_SMOKE -r 4 -w 4
//   java -Duser.home=.stack/rocketmq -Drmq.logback.configurationFile=rmq.client.logback.xml \
//     -cp "$HOME/.cache/job-service/rocketmq-5.3.3/lib/*" deploy/local/rocketmq/Smoke.java \
//     127.0.0.1:9876 STACK_SMOKE timer 200      (or: ... STACK_SMOKE retry)
// timer: sends N messages with property TIMER_DELIVER_MS 2-5 s ahead, prints lateness min/p50/p99.
// retry: a consumer that always answers RECONSUME_LATER (maxReconsumeTimes=1); the message must
// come back once via %RETRY%<group>, then land in %DLQ%<group>.
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.*;
import org.apache.rocketmq.client.producer.*;
import org.apache.rocketmq.common.message.*;

// Usage: Smoke <namesrv> <topic> timer [n] | Smoke <namesrv> <topic> retry
public class Smoke {
  public static void main(String[] a) throws Exception {
    String ns = a[0], topic = a[1], mode = a[2];
    int n = a.length > 3 ? Integer.parseInt(a[3]) : 50;
    String run = Long.toString(System.currentTimeMillis());
    DefaultMQProducer p = new DefaultMQProducer("smoke-producer");
    p.setNamesrvAddr(ns);
    p.start();
    if (mode.equals("timer")) {
      List<Long> lateness = Collections.synchronizedList(new ArrayList<>());
      CountDownLatch done = new CountDownLatch(n);
      DefaultMQPushConsumer c = new DefaultMQPushConsumer("smoke-timer-" + run);
      c.setNamesrvAddr(ns);
      c.subscribe(topic, "TIMER" + run);
      c.setConsumeFromWhere(org.apache.rocketmq.common.consumer.ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET);
      c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
        long now = System.currentTimeMillis();
        for (MessageExt m : msgs) {
          long want = Long.parseLong(m.getUserProperty("WANT"));
          lateness.add(now - want);
          done.countDown();
        }
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
      });
      c.start();
      Thread.sleep(3000);
      for (int i = 0; i < n; i++) {
        long want = System.currentTimeMillis() + 2000 + (i * 97L) % 3000;
        Message m = new Message(topic, "TIMER" + run, ("t" + i).getBytes());
        MessageAccessor.putProperty(m, "TIMER_DELIVER_MS", Long.toString(want));
        m.putUserProperty("WANT", Long.toString(want));
        SendResult r = p.send(m);
        if (r.getSendStatus() != SendStatus.SEND_OK) throw new RuntimeException("send " + r);
      }
      boolean ok = done.await(60, TimeUnit.SECONDS);
      List<Long> l = new ArrayList<>(lateness);
      Collections.sort(l);
      System.out.printf("timer: received %d/%d ok=%s lateness ms min=%d p50=%d p99=%d max=%d early=%d%n", l.size(), n, ok,
          l.get(0), l.get(l.size() / 2), l.get((int) Math.ceil(l.size() * 0.99) - 1), l.get(l.size() - 1),
          l.stream().filter(x -> x < 0).count());
      c.shutdown();
      if (!ok) System.exit(1);
    } else {
      String group = "smoke-retry-" + run;
      AtomicInteger attempts = new AtomicInteger();
      DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
      c.setNamesrvAddr(ns);
      c.subscribe(topic, "RETRY" + run);
      c.setMaxReconsumeTimes(1);
      c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
        for (MessageExt m : msgs) {
          System.out.printf("retry: got %s reconsumeTimes=%d topic=%s%n", m.getKeys(), m.getReconsumeTimes(), m.getTopic());
          attempts.incrementAndGet();
        }
        return ConsumeConcurrentlyStatus.RECONSUME_LATER;
      });
      c.start();
      Thread.sleep(3000);
      Message m = new Message(topic, "RETRY" + run, "k" + run, "boom".getBytes());
      System.out.println("retry: sent " + p.send(m).getSendStatus());
      // DLQ consumer
      CountDownLatch dlq = new CountDownLatch(1);
      DefaultMQPushConsumer d = null;
      long deadline = System.currentTimeMillis() + 90_000;
      while (System.currentTimeMillis() < deadline && dlq.getCount() > 0) {
        Thread.sleep(2000);
        if (d == null && attempts.get() >= 2) {
          try {
            d = new DefaultMQPushConsumer("smoke-dlq-" + run);
            d.setNamesrvAddr(ns);
            d.subscribe("%DLQ%" + group, "*");
            d.setConsumeFromWhere(org.apache.rocketmq.common.consumer.ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            d.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
              for (MessageExt x : msgs) System.out.printf("dlq: got %s from %s%n", x.getKeys(), x.getTopic());
              dlq.countDown();
              return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            d.start();
          } catch (Exception e) { System.out.println("dlq subscribe failed (retrying): " + e); d = null; }
        }
      }
      System.out.printf("retry: attempts=%d dlq=%s%n", attempts.get(), dlq.getCount() == 0);
      c.shutdown();
      if (d != null) d.shutdown();
      if (attempts.get() < 2 || dlq.getCount() > 0) System.exit(1);
    }
    p.shutdown();
  }
}
