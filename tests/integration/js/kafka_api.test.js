// kafka_api.test.js - kafkajs 2.2.4 (an unmodified Node.js client with its own
// protocol codec) against a real stratad over TCP: admin topic operations,
// ListOffsets (earliest/latest/by timestamp), and a GZIP-compressed acks=-1
// producer whose records are read back with kcat and compared field by field.
// Run with `node --test` from this folder; STRATAD is the broker binary.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')
const { startBroker } = require('./strata_broker')

// kcat -C reads a whole topic; -J prints one JSON object per record.
function kcatConsume (bootstrap, topic) {
  const r = spawnSync('kcat', ['-b', bootstrap, '-C', '-t', topic, '-o', 'beginning', '-e',
    '-J'], { encoding: 'utf8', timeout: 60000 })
  assert.equal(r.status, 0, `kcat failed: ${r.stderr}`)
  return r.stdout.split('\n').filter(l => l.trim()).map(l => JSON.parse(l))
}

// ---- The records: 4 partitions, 40 records, deterministic timestamps ----

const PARTITIONS = 4
const N = 40
const BASE_TS = Date.now() - 3600 * 1000 // an hour ago, 1 s apart: lookups are exact

function makeMessages () {
  const out = []
  for (let i = 0; i < N; i++) {
    const m = {
      partition: i % PARTITIONS,
      key: i === 7 ? null : `key-${i}`,
      value: i === 13 ? null : `value-${i}-${'abcdefghij'.repeat(i % 9)}`,
      timestamp: String(BASE_TS + i * 1000),
      headers: { 'h-index': String(i), trace: ['first', `second-${i}`] }
    }
    if (i % 5 === 0) m.headers = {} // some records without headers
    out.push(m)
  }
  return out
}

// kcat -J headers: a flat [name, value, name, value, ...] array in wire order.
function expectedHeaders (h) {
  const flat = []
  for (const [k, v] of Object.entries(h)) {
    for (const one of Array.isArray(v) ? v : [v]) flat.push(k, one)
  }
  return flat
}

let broker
let kafka

before(async () => {
  broker = await startBroker()
  kafka = new Kafka({
    clientId: 'strata-kafkajs-it',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 5 }
  })
})

after(async () => {
  if (broker) await broker.stopClean()
})

test('admin: create, list, describe and delete topics', { timeout: 60000 }, async () => {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      topics: [{ topic: 'js-admin', numPartitions: 3, replicationFactor: 1 }],
      waitForLeaders: true
    })
    assert.equal(created, true)
    // Creating it again reports "already exists", which kafkajs turns into false.
    assert.equal(await admin.createTopics({
      topics: [{ topic: 'js-admin', numPartitions: 3 }]
    }), false)
    assert.ok((await admin.listTopics()).includes('js-admin'))

    const md = await admin.fetchTopicMetadata({ topics: ['js-admin'] })
    assert.equal(md.topics.length, 1)
    assert.equal(md.topics[0].name, 'js-admin')
    const parts = md.topics[0].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(parts.map(p => p.partitionId), [0, 1, 2])
    for (const p of parts) {
      assert.equal(p.partitionErrorCode, 0)
      assert.ok(p.leader >= 0)
      assert.deepEqual(p.replicas, [p.leader])
      assert.deepEqual(p.isr, [p.leader])
    }
    // An empty topic: earliest = latest = 0 everywhere.
    const offs = await admin.fetchTopicOffsets('js-admin')
    assert.deepEqual(offs.map(o => [o.partition, o.low, o.high]).sort(),
      [[0, '0', '0'], [1, '0', '0'], [2, '0', '0']])

    await admin.deleteTopics({ topics: ['js-admin'], timeout: 10000 })
    assert.ok(!(await admin.listTopics()).includes('js-admin'))
  } finally {
    await admin.disconnect()
  }
})

test('producer acks=-1 GZIP to several partitions; kcat reads every field back; ' +
     'ListOffsets earliest/latest/by timestamp', { timeout: 120000 }, async () => {
  const topic = 'js-produce'
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await admin.connect()
  await producer.connect()
  try {
    assert.equal(await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true
    }), true)

    const msgs = makeMessages()
    // Two sends so every partition holds two batches.
    for (const half of [msgs.slice(0, N / 2), msgs.slice(N / 2)]) {
      const res = await producer.send({
        topic, acks: -1, compression: CompressionTypes.GZIP, messages: half
      })
      assert.equal(res.length, PARTITIONS)
      for (const r of res) assert.equal(r.errorCode, 0)
    }

    // Latest = records per partition, earliest = 0.
    const offs = await admin.fetchTopicOffsets(topic)
    assert.equal(offs.length, PARTITIONS)
    for (const o of offs) {
      assert.equal(o.low, '0')
      assert.equal(o.high, String(N / PARTITIONS))
      assert.equal(o.offset, o.high)
    }
    // By timestamp: record i (partition i % 4, offset i / 4) has BASE_TS + i s, so the first
    // record at or after record 20's timestamp is offset 5 in every partition.
    const byTs = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 20 * 1000)
    assert.deepEqual(byTs.map(o => [o.partition, o.offset]).sort(),
      [[0, '5'], [1, '5'], [2, '5'], [3, '5']])
    // After every record: kafkajs answers the latest offset (the broker says -1).
    const late = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + N * 1000)
    assert.deepEqual(late.map(o => [o.partition, o.offset]).sort(),
      [[0, '10'], [1, '10'], [2, '10'], [3, '10']])

    // Read back with kcat (librdkafka decompresses the GZIP batches) and compare.
    const got = kcatConsume(broker.bootstrap, topic)
    assert.equal(got.length, N)
    const seen = new Set()
    for (const rec of got) {
      const i = rec.partition + PARTITIONS * rec.offset
      const m = msgs[i]
      assert.ok(m, `unexpected record ${JSON.stringify(rec)}`)
      seen.add(i)
      assert.equal(rec.topic, topic)
      assert.equal(rec.partition, m.partition)
      assert.equal(rec.key, m.key, `key of record ${i}`)
      assert.equal(rec.payload, m.value, `value of record ${i}`)
      assert.equal(rec.tstype, 'create')
      assert.equal(String(rec.ts), m.timestamp, `timestamp of record ${i}`)
      assert.deepEqual(rec.headers || [], expectedHeaders(m.headers), `headers of record ${i}`)
    }
    assert.equal(seen.size, N)

    await admin.deleteTopics({ topics: [topic], timeout: 10000 })
    assert.ok(!(await admin.listTopics()).includes(topic))
  } finally {
    await producer.disconnect()
    await admin.disconnect()
  }
})

// Kafka answers a timestamp inside a compressed batch with the exact record's offset (it
// decompresses the batch); so does Strata (core/st_codec + plog_batch_offset_for_time).
test('ListOffsets by timestamp inside a GZIP batch answers the exact record', {
  timeout: 60000
}, async () => {
  const topic = 'js-ts-gzip'
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await admin.connect()
  await producer.connect()
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true
    })
    const msgs = makeMessages()
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: msgs })
    // Between records 21 and 22: partitions 0 and 1 next hold records 24 and 25 (offset 6),
    // partitions 2 and 3 records 22 and 23 (offset 5); all inside one batch per partition.
    const mid = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 21 * 1000 + 500)
    assert.deepEqual(mid.map(o => [o.partition, o.offset]).sort(),
      [[0, '6'], [1, '6'], [2, '5'], [3, '5']])
  } finally {
    await producer.disconnect()
    await admin.disconnect()
  }
})

// kafkajs has no group-less consumer: kafka.consumer() always joins a consumer group
// (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetFetch/Commit).
test('kafkajs consumer reads every field back',
  async () => {
    const topic = 'js-consume'
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })
    await admin.disconnect()
    const msgs = makeMessages()
    const producer = kafka.producer()
    await producer.connect()
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: msgs })
    await producer.disconnect()

    const consumer = kafka.consumer({ groupId: 'js-it' })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const got = []
    await new Promise((resolve, reject) => {
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          got.push({ partition, message })
          if (got.length === N) resolve()
        }
      }).catch(reject)
    })
    await consumer.disconnect()
    for (const { partition, message } of got) {
      const m = msgs[partition + PARTITIONS * Number(message.offset)]
      assert.equal(message.key === null ? null : message.key.toString(), m.key)
      assert.equal(message.value === null ? null : message.value.toString(), m.value)
      assert.equal(message.timestamp, m.timestamp)
      const h = {}
      for (const [k, v] of Object.entries(message.headers)) {
        h[k] = Array.isArray(v) ? v.map(String) : String(v)
      }
      assert.deepEqual(h, m.headers)
    }
  })
