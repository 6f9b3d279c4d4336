// Drives the emulator with the Apache OpenWhisk JavaScript client (npm package `openwhisk`):
// create a native action from a zip, invoke it blocking and non-blocking, read its activations
// and logs, delete it. Prints one JSON document of what it saw; exits non-zero on any failure.
//
//   OW_APIHOST=http://127.0.0.1:3233 OW_AUTH=uuid:key OW_ZIP=/path/exec.zip node driver.js
'use strict'

const fs = require('fs')
const openwhisk = require('openwhisk')

async function main () {
  const ow = openwhisk({ apihost: process.env.OW_APIHOST, api_key: process.env.OW_AUTH })
  const zip = fs.readFileSync(process.env.OW_ZIP)
  const name = 'js-native'
  const seen = {}

  // As `wsk action create NAME exec.zip --native` does: kind blackbox, image dockerskeleton,
  // base64 code (the client sends a Buffer as base64 and no `binary` flag).
  seen.created = await ow.actions.create({
    name,
    action: zip,
    kind: 'blackbox',
    exec: { image: 'openwhisk/dockerskeleton' },
    limits: { timeout: 5000 }
  })
  seen.blocking = await ow.actions.invoke({ name, params: { who: 'js' }, blocking: true })
  seen.result = await ow.actions.invoke({ name, params: { who: 'result' }, blocking: true, result: true })
  const queued = await ow.actions.invoke({ name, params: { who: 'async' } })
  seen.queued = queued
  let record = null
  for (let i = 0; i < 100 && record === null; i++) {
    try {
      record = await ow.activations.get({ name: queued.activationId })
    } catch (e) {
      if (e.statusCode !== 404) throw e
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  seen.activation = record
  seen.logs = await ow.activations.logs({ name: queued.activationId })
  seen.activationResult = await ow.activations.result({ name: queued.activationId })
  seen.list = await ow.activations.list({ name, limit: 5 })
  seen.actions = await ow.actions.list()
  seen.got = await ow.actions.get({ name })
  seen.namespaces = await ow.namespaces.list()
  seen.deleted = await ow.actions.delete({ name })
  try {
    await ow.actions.get({ name })
    seen.afterDelete = 'still there'
  } catch (e) {
    seen.afterDelete = { statusCode: e.statusCode, error: e.error }
  }
  try {
    await openwhisk({ apihost: process.env.OW_APIHOST, api_key: 'nobody:nothing' }).actions.list()
    seen.wrongKey = 'accepted'
  } catch (e) {
    seen.wrongKey = { statusCode: e.statusCode, error: e.error }
  }
  process.stdout.write(JSON.stringify(seen))
}

main().catch(e => {
  console.error(e && e.stack ? e.stack : e)
  process.exit(1)
})
