#!/usr/bin/python3
"""A confluent-kafka group member for test_groups.py, run as its own process so
the test can kill -9 it. Prints one line per event, flushed:
  ASSIGN p,p,...    the partitions it owns after a rebalance
  MSG p offset      a record it processed (before committing it)
  COMMIT p offset   the commit of `offset` (next to read) was acknowledged
Usage: group_consumer.py BOOTSTRAP GROUP TOPIC STRATEGY [INSTANCE_ID]"""
import sys

from confluent_kafka import Consumer, KafkaException

bootstrap, group, topic, strategy = sys.argv[1:5]
conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500, "partition.assignment.strategy": strategy}
if len(sys.argv) > 5:
    conf["group.instance.id"] = sys.argv[5]
c = Consumer(conf)


def show(owned):
    print("ASSIGN " + ",".join(map(str, sorted(owned))), flush=True)


# The callbacks run before the library applies the change, and cooperative ones carry only the
# delta: the whole assignment is the current one plus or minus the partitions given.
def on_assign(consumer, parts):
    show({tp.partition for tp in consumer.assignment()} | {tp.partition for tp in parts})


def on_revoke(consumer, parts):
    show({tp.partition for tp in consumer.assignment()} - {tp.partition for tp in parts})


c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
try:
    while True:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            print("ERROR %s" % m.error(), flush=True)
            continue
        print("MSG %d %d" % (m.partition(), m.offset()), flush=True)
        try:
            c.commit(message=m, asynchronous=False)
            print("COMMIT %d %d" % (m.partition(), m.offset() + 1), flush=True)
        except KafkaException as e:  # a rebalance may fence an old generation's commit
            print("COMMITFAIL %d %d %s" % (m.partition(), m.offset(), e), flush=True)
except KeyboardInterrupt:
    pass
finally:
    c.close()
