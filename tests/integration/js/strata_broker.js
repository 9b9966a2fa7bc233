// strata_broker.js - the one stratad helper of the kafkajs tests (kafka_api.test.js,
// groups_kafkajs.js, txn_kafkajs.js): its own data directory, free loopback ports, resolved
// once it logged "started" (rejected if it exits first); stop() sends SIGTERM, removes the
// data directory and resolves with the exit { code, signal, output }; stopClean() also
// throws unless the exit was 0 with no sanitizer report. STRATAD is the binary.
'use strict'

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const STRATAD = process.env.STRATAD || path.resolve(__dirname, '../../../build/tools/stratad')

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

// extra: more stratad arguments (e.g. ['-X', 'key=value']).
async function startBroker (extra = []) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-js-'))
  const bootstrap = `127.0.0.1:${await freePort()}`
  const b = { bootstrap, output: '' }
  const proc = spawn(STRATAD, ['--log-dir', data, '--smp', '2', '--listeners', bootstrap,
    '--admin-listener', `127.0.0.1:${await freePort()}`, ...extra],
  { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise(resolve => proc.once('exit', (code, signal) => resolve({ code, signal })))
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stratad did not start:\n${b.output}`)), 30000)
    const onData = chunk => {
      b.output += chunk
      if (/started/.test(b.output)) {
        clearTimeout(timer)
        resolve()
      }
    }
    proc.stdout.on('data', onData)
    proc.stderr.on('data', onData)
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`stratad exited (${code} ${signal}) before starting:\n${b.output}`))
    })
  })
  b.stop = async () => {
    proc.kill('SIGTERM')
    const { code, signal } = await exited
    fs.rmSync(data, { recursive: true, force: true })
    return { code, signal, output: b.output }
  }
  b.stopClean = async () => {
    const { code, signal, output } = await b.stop()
    if (code !== 0 || /ERROR: (Address|Leak)Sanitizer|runtime error:/.test(output)) {
      throw new Error(`stratad exit ${code} ${signal}:\n${output}`)
    }
  }
  return b
}

module.exports = { startBroker }
