// sasl_client.js - kafkajs 2.2.4 over SASL for test_sasl.py: produce COUNT
// records to TOPIC, then consume them back in a fresh group, and print one
// JSON line {"produced": n, "consumed": [values...]} or {"error": "..."}.
// Usage: node sasl_client.js BROKER MECHANISM USER PASSWORD TOPIC COUNT
// (MECHANISM: plain, scram-sha-256 or scram-sha-512, kafkajs' spelling).
// With SASL_JS_CA=FILE the connection is SASL_SSL, trusting that CA.
'use strict'

const fs = require('node:fs')
const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const [broker, mechanism, username, password, topic, countText] = process.argv.slice(2)
  const count = parseInt(countText, 10)
  const kafka = new Kafka({
    clientId: 'strata-sasl-js',
    brokers: [broker],
    sasl: { mechanism, username, password },
    ssl: process.env.SASL_JS_CA ? { ca: [fs.readFileSync(process.env.SASL_JS_CA)] } : false,
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 }
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < count; i++) messages.push({ value: `js-${i}` })
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `g-${topic}`, sessionTimeout: 10000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const consumed = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${consumed.length} of ${count}`)), 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        consumed.push(message.value.toString())
        if (consumed.length >= count) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  process.stdout.write(JSON.stringify({ produced: count, consumed }) + '\n')
}

main().catch(e => {
  process.stdout.write(JSON.stringify({ error: `${e.name}: ${e.message}`, type: e.type || null }) + '\n')
  process.exit(1)
})
