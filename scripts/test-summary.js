#!/usr/bin/env node
// Prints one plain closing line from vitest's JSON report: "N passed, N failed, N skipped".
import {readFileSync} from 'node:fs'

const r = JSON.parse(readFileSync(process.argv[2] ?? '.ci/results.json', 'utf8'))
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
