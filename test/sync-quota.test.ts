import { describe, expect, it } from 'vitest'
import { SyncQuota } from '../src/sync/quota.ts'

describe('SyncQuota', () => {
  it('lets a peer send its quota, then refuses it until the minute refills it', () => {
    let now = 0
    const quota = new SyncQuota({ bytesPerMinute: 1_000, entriesPerMinute: 100 }, () => now)
    expect(quota.charge('a', 600, 10)).toBeUndefined()
    expect(quota.charge('a', 300, 10)).toBeUndefined()
    expect(quota.allows('a')).toBe(true)
    // What is left (100 bytes) still lets one frame through, into debt (-100)...
    expect(quota.charge('a', 200, 1)).toBeUndefined()
    expect(quota.allows('a')).toBe(false)
    // ...and nothing more until the debt is waited out.
    expect(quota.charge('a', 1, 0)).toBe('bytes')
    // Another peer has its own quota.
    expect(quota.charge('b', 900, 99)).toBeUndefined()
    // Half a minute refills half: 500 - 100 of debt.
    now = 30_000
    expect(quota.allows('a')).toBe(true)
    expect(quota.charge('a', 400, 1)).toBeUndefined()
    expect(quota.charge('a', 1, 0)).toBe('bytes')
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

  it('lets a chunk larger than the whole quota through once, then makes the peer wait', () => {
    let now = 0
    const quota = new SyncQuota({ bytesPerMinute: 1_000, entriesPerMinute: 100 }, () => now)
    expect(quota.charge('a', 5_000, 10)).toBeUndefined()
    expect(quota.charge('a', 1, 0)).toBe('bytes')
    now = 4 * 60_000 // 4,000 of the 4,000 debt refilled: still nothing left
    expect(quota.allows('a')).toBe(false)
    now = 4.5 * 60_000
    expect(quota.charge('a', 1, 0)).toBeUndefined()
  })
})
