import { describe, expect, it } from 'vitest'
import { expectCleanLog, findLogProblems } from './helpers/log-check.ts'

const json = (level: number, msg: string) =>
  JSON.stringify({ level, time: '2026-01-01T00:00:00.000Z', pid: 1, msg })

describe('daemon log check', () => {
  it('passes info and warn lines, flags error, fatal and unhandled-rejection lines', () => {
    const log = [
      json(30, 'listening'),
      json(40, 'anti-entropy failed: stream reset'),
      json(50, 'unhandled rejection; the daemon keeps running'),
      json(60, 'uncaught exception'),
      json(50, 'store failed'),
      '',
    ].join('\n')
    expect(findLogProblems(log).map((p) => [p.line, p.kind])).toEqual([
      [3, 'unhandled rejection'],
      [4, 'uncaught exception'],
      [5, 'error'],
    ])
  })

  it('reads the text form and Node’s own crash reports', () => {
    const log = [
      '12:00:00.000 INFO  joined the mesh  peerId=12D3',
      '12:00:01.000 ERROR unhandled rejection; the daemon keeps running  err={}',
      '12:00:02.000 WARN  gossip above the rate limit: dropping',
      "TypeError: Cannot read properties of undefined (reading 'slice')",
      '    at logOnce (attach-mesh.ts:1:1)',
      '[UnhandledPromiseRejection: This error originated either by throwing inside of an async function]',
    ].join('\n')
    expect(findLogProblems(log).map((p) => p.kind)).toEqual([
      'unhandled rejection',
      'node crash report',
      'unhandled rejection',
    ])
  })

  it('skips allowed lines and throws with a listing otherwise', () => {
    const log = `${json(50, 'expected failure in this test')}\n${json(50, 'something else')}`
    expect(findLogProblems(log, { allow: [/expected failure/] })).toHaveLength(1)
    expect(() => expectCleanLog(log, 'peer A')).toThrow(
      /peer A logged 2 problem line\(s\)[\s\S]*something else/,
    )
    expect(() => expectCleanLog(`${json(30, 'fine')}\n\nnot json at all\n`)).not.toThrow()
  })
})
