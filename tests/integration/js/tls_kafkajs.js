// tls_kafkajs.js - kafkajs (its own TLS setup on Node's tls module) produces
// and consumes over an SSL listener of a running stratad; driven by
// tests/integration/test_tls.py. Environment: BOOTSTRAP, TOPIC, CA (PEM file),
// optional CERT and KEY (client certificate, mTLS), N (records, default 20).
// Prints "ok N" and exits 0 when every record came back in order.
'use strict'

const fs = require('node:fs')
const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const env = process.env
  const ssl = { ca: [fs.readFileSync(env.CA, 'utf8')], servername: 'localhost' }
  if (env.CERT) {
    ssl.cert = fs.readFileSync(env.CERT, 'utf8')
    ssl.key = fs.readFileSync(env.KEY, 'utf8')
  }
  const n = Number(env.N || 20)
  const kafka = new Kafka({
    clientId: 'strata-tls-test',
    brokers: [env.BOOTSTRAP],
    ssl,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10000,
    retry: { retries: 3 }
  })
  const producer = kafka.producer({ allowAutoTopicCreation: true })
  await producer.connect()
  const sent = []
  for (let i = 0; i < n; i++) sent.push({ key: `k${i}`, value: `js-tls-${i}` })
  await producer.send({ topic: env.TOPIC, acks: -1, messages: sent })
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `g-${env.TOPIC}` })
  await consumer.connect()
  await consumer.subscribe({ topic: env.TOPIC, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} records`)), 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString())
        if (got.length === n) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  for (let i = 0; i < n; i++) {
    if (got[i] !== `js-tls-${i}`) throw new Error(`record ${i} is ${got[i]}`)
  }
  console.log(`ok ${n}`)
}

main().then(() => process.exit(0), err => {
  console.error(`kafkajs over TLS failed: ${err.stack || err}`)
  process.exit(1)
})
