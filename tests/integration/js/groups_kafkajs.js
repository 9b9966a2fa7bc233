// groups_kafkajs.js - consumer groups with kafkajs 2.2.4 (its own protocol codec) against a
// real stratad: a kafkajs group and a kafka-python group read the same topic, each whole;
// committed offsets come back through the admin API; kafkajs admin lists, describes and
// deletes groups. Registered by tests/integration/groups.cmake (`node --test` on this file).
// Time limits are upper bounds for waiting only.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const { Kafka, logLevel } = require('kafkajs')
const { startBroker } = require('./strata_broker')

const WAIT_MS = 60000

let broker, bootstrap, kafka

before(async () => {
  broker = await startBroker(['-X', 'group.initial.rebalance.delay.ms=0'])
  bootstrap = broker.bootstrap
  kafka = new Kafka({ clientId: 'strata-js-groups', brokers: [bootstrap], logLevel: logLevel.NOTHING })
})

after(async () => {
  if (broker) await broker.stopClean()
})

// A kafka-python group reading `n` records of `topic`; resolves with their count.
function kafkaPythonGroup (topic, group, n) {
  const script = `
import sys
from kafka import KafkaConsumer
c = KafkaConsumer(${JSON.stringify(topic)}, bootstrap_servers=${JSON.stringify(bootstrap)},
                  group_id=${JSON.stringify(group)}, auto_offset_reset="earliest",
                  consumer_timeout_ms=${WAIT_MS})
seen = set()
for m in c:
    seen.add((m.partition, m.offset))
    if len(seen) == ${n}:
        break
c.commit()
c.close()
print(len(seen))
`
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', c => { out += c })
    p.stderr.on('data', c => { err += c })
    p.once('exit', code => code === 0 ? resolve(Number(out.trim())) : reject(new Error(err)))
  })
}

test('kafkajs and kafka-python groups each read the whole topic', { timeout: 120000 }, async () => {
  const topic = 'js-groups'
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] })
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < 100; i++) messages.push({ partition: i % 4, value: `v${i}` })
  await producer.send({ topic, messages, acks: -1 })
  await producer.disconnect()

  const python = kafkaPythonGroup(topic, 'py-readers', 100)
  const seen = new Set()
  const consumers = [kafka.consumer({ groupId: 'js-readers' }),
    kafka.consumer({ groupId: 'js-readers' })]
  let done
  const all = new Promise(resolve => { done = resolve })
  for (const c of consumers) {
    await c.connect()
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({
      eachMessage: async ({ partition, message }) => {
        seen.add(`${partition}:${message.offset}`)
        if (seen.size === 100) done()
      }
    })
  }
  const timer = setTimeout(() => done(), WAIT_MS)
  await all
  clearTimeout(timer)
  assert.equal(seen.size, 100)
  assert.equal(await python, 100)

  // Both groups are known; the kafkajs one has two members while it runs.
  const listed = await admin.listGroups()
  const names = listed.groups.map(g => g.groupId)
  assert.ok(names.includes('js-readers') && names.includes('py-readers'), JSON.stringify(listed))
  let desc
  const deadline = Date.now() + WAIT_MS
  do {
    desc = (await admin.describeGroups(['js-readers'])).groups[0]
  } while ((desc.state !== 'Stable' || desc.members.length !== 2) && Date.now() < deadline &&
           await new Promise(resolve => setTimeout(() => resolve(true), 100)))
  assert.equal(desc.state, 'Stable')
  assert.equal(desc.protocolType, 'consumer')
  assert.equal(desc.members.length, 2)

  // Deleting a group with members fails; once they left it works.
  await assert.rejects(admin.deleteGroups(['js-readers']))
  for (const c of consumers) await c.disconnect()
  const offsets = await admin.fetchOffsets({ groupId: 'js-readers', topics: [topic] })
  const byPartition = Object.fromEntries(offsets[0].partitions.map(p => [p.partition, p.offset]))
  assert.deepEqual(byPartition, { 0: '25', 1: '25', 2: '25', 3: '25' })
  const pyOffsets = await admin.fetchOffsets({ groupId: 'py-readers', topics: [topic] })
  assert.deepEqual(pyOffsets[0].partitions.map(p => p.offset).sort(), ['25', '25', '25', '25'])
  const deleted = await admin.deleteGroups(['js-readers'])
  assert.equal(deleted[0].errorCode, 0)
  const after = (await admin.describeGroups(['js-readers'])).groups[0]
  assert.equal(after.state, 'Dead')
  const gone = await admin.fetchOffsets({ groupId: 'js-readers', topics: [topic] })
  assert.deepEqual(gone[0].partitions.map(p => p.offset), ['-1', '-1', '-1', '-1'])
  await admin.disconnect()
})
