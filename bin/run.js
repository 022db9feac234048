#!/usr/bin/env node
// Entry point: oclif loads only the command being run (lazy start-up).
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
