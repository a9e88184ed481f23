import { describe, expect, it } from 'vitest'
import { SyncQuota } from '../src/sync/quota.ts'

describe('SyncQuota', () => {
  it('lets a peer send its quota, then refuses it until the minute refills it', () => {
    let now = 0
    const quota = new SyncQuota({ bytesPerMinute: 1_000, entriesPerMinute: 100 }, () => now)
    expect(quota.charge('a', 600, 10)).toBeUndefined()
    expect(quota.charge('a', 300, 10)).toBeUndefined()
    expect(quota.allows('a')).toBe(true)
    expect(quota.charge('a', 200, 1)).toBe('bytes')
    expect(quota.allows('a')).toBe(false)
    // Another peer has its own quota.
    expect(quota.charge('b', 900, 99)).toBeUndefined()
    // Half a minute refills half.
    now = 30_000
    expect(quota.allows('a')).toBe(true)
    expect(quota.charge('a', 400, 1)).toBeUndefined()
    expect(quota.charge('a', 200, 1)).toBe('bytes')
    // Never more than one minute's worth at once.
    now = 10 * 60_000
    expect(quota.charge('a', 1_000, 0)).toBeUndefined()
    expect(quota.charge('a', 1, 0)).toBe('bytes')
  })

  it('counts entries as well as bytes', () => {
    const quota = new SyncQuota({ bytesPerMinute: 1_000_000, entriesPerMinute: 50 }, () => 0)
    expect(quota.charge('a', 10, 50)).toBeUndefined()
    expect(quota.charge('a', 10, 1)).toBe('entries')
  })
})
