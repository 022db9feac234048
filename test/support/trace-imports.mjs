// Loaded with `node --import`: records every module the process resolves into
// $AUTOLABS_TRACE_IMPORTS, so a test can prove that start-up stays lazy.
import {register} from 'node:module'
import {appendFileSync} from 'node:fs'

const out = process.env.AUTOLABS_TRACE_IMPORTS
const {port1, port2} = new MessageChannel()
port1.on('message', (url) => appendFileSync(out, url + '\n'))
port1.unref()
register('./trace-imports-hooks.mjs', import.meta.url, {data: {port: port2}, transferList: [port2]})
