// compact_kafkajs.js - kafkajs reads a compacted topic (offsets with gaps,
// empty batches) from its beginning; driven by tests/integration/test_compact.py.
// Environment: BOOTSTRAP, TOPIC, LAST (the offset of the log's last record).
// Prints one JSON line: [[offset, key, value], ...] once LAST was read.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const env = process.env
  const last = Number(env.LAST)
  const kafka = new Kafka({
    clientId: 'strata-compact-test',
    brokers: [env.BOOTSTRAP],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10000,
    retry: { retries: 3 }
  })
  const consumer = kafka.consumer({ groupId: `g-${env.TOPIC}-${Date.now()}` })
  await consumer.connect()
  await consumer.subscribe({ topic: env.TOPIC, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stuck after ${got.length} records`)), 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push([Number(message.offset), message.key ? message.key.toString() : null,
          message.value ? message.value.toString() : null])
        if (Number(message.offset) >= last) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  console.log(JSON.stringify(got))
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
