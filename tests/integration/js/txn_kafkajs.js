// txn_kafkajs.js - transactions with kafkajs 2.2.4 (its own protocol codec and its own
// transaction manager) against a real stratad: a committed and an aborted transaction,
// read back by a kafkajs consumer (read_committed, kafkajs' default) and by kcat in
// read_uncommitted; sendOffsets commits a group's offsets only with the transaction.
// Registered by tests/integration/js.cmake (`node --test` on this file).
// Time limits are upper bounds for waiting only.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { Kafka, logLevel } = require('kafkajs')
const { startBroker } = require('./strata_broker')

let broker, bootstrap, kafka

before(async () => {
  broker = await startBroker(['-X', 'group.initial.rebalance.delay.ms=0'])
  bootstrap = broker.bootstrap
  kafka = new Kafka({ clientId: 'strata-js-txn', brokers: [bootstrap], logLevel: logLevel.NOTHING })
})

after(async () => {
  if (broker) await broker.stopClean()
})

// Every value of topic, read_uncommitted (kcat's default).
function kcatValues (topic) {
  const r = spawnSync('kcat', ['-b', bootstrap, '-C', '-t', topic, '-o', 'beginning', '-e',
    '-f', '%s\n', '-X', 'isolation.level=read_uncommitted'], { encoding: 'utf8', timeout: 60000 })
  assert.equal(r.status, 0, `kcat failed: ${r.stderr}`)
  return r.stdout.split('\n').filter(s => s.length > 0)
}

// A kafkajs group reading topic (read_committed) until n values arrived.
async function consumeValues (topic, group, n) {
  const consumer = kafka.consumer({ groupId: group, readUncommitted: false })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${values.length} of ${n}`)), 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString())
        if (values.length >= n) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  return values
}

test('kafkajs transactions: commit, abort, sendOffsets', { timeout: 180000 }, async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'jtx', numPartitions: 2 }] })
  const producer = kafka.producer({ transactionalId: 'js-tx', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()

  let tx = await producer.transaction()
  await tx.send({ topic: 'jtx', messages: [0, 1, 2, 3].map(i => ({ value: `c${i}`, partition: i % 2 })) })
  await tx.commit()

  tx = await producer.transaction()
  await tx.send({ topic: 'jtx', messages: [{ value: 'aborted', partition: 0 }] })
  await tx.abort()

  tx = await producer.transaction()
  await tx.send({ topic: 'jtx', messages: [{ value: 'c4', partition: 1 }] })
  await tx.sendOffsets({ consumerGroupId: 'js-txg', topics: [{ topic: 'jtx', partitions: [{ partition: 0, offset: '2' }] }] })
  // Not visible before the commit.
  let offs = await admin.fetchOffsets({ groupId: 'js-txg', topics: ['jtx'] })
  assert.equal(offs[0].partitions.find(p => p.partition === 0).offset, '-1')
  await tx.commit()
  offs = await admin.fetchOffsets({ groupId: 'js-txg', topics: ['jtx'] })
  assert.equal(offs[0].partitions.find(p => p.partition === 0).offset, '2')

  // An aborted transaction's offsets are not committed.
  tx = await producer.transaction()
  await tx.sendOffsets({ consumerGroupId: 'js-txg', topics: [{ topic: 'jtx', partitions: [{ partition: 0, offset: '3' }] }] })
  await tx.abort()
  offs = await admin.fetchOffsets({ groupId: 'js-txg', topics: ['jtx'] })
  assert.equal(offs[0].partitions.find(p => p.partition === 0).offset, '2')
  await producer.disconnect()

  const committed = await consumeValues('jtx', 'js-read', 5)
  assert.deepEqual(committed.sort(), ['c0', 'c1', 'c2', 'c3', 'c4'])
  const all = kcatValues('jtx')
  assert.deepEqual(all.sort(), ['aborted', 'c0', 'c1', 'c2', 'c3', 'c4'])
  await admin.disconnect()
})
