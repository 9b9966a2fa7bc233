// strata_broker.js - start a stratad for a node:test file: its own data directory, free
// loopback ports, resolved once it logged "started"; stop() sends SIGTERM, removes the data
// directory and resolves with the exit { code, signal, output }. STRATAD is the binary.
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
    const timer = setTimeout(() => reject(new Error(`no start:\n${b.output}`)), 30000)
    const onData = chunk => {
      b.output += chunk
      if (/started/.test(b.output)) {
        clearTimeout(timer)
        resolve()
      }
    }
    proc.stdout.on('data', onData)
    proc.stderr.on('data', onData)
  })
  b.stop = async () => {
    proc.kill('SIGTERM')
    const { code, signal } = await exited
    fs.rmSync(data, { recursive: true, force: true })
    return { code, signal, output: b.output }
  }
  return b
}

module.exports = { startBroker }
