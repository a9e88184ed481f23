import { readFileSync } from 'node:fs'
import { checkHistory } from './checker.ts'

const h = JSON.parse(readFileSync(process.argv[2]!, 'utf8'))
const t = performance.now()
const v = checkHistory(h)
console.log(h.ops.length, 'ops', Math.round(performance.now() - t), 'ms', v.length, 'violations')
