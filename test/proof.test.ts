import { describe, expect, it } from 'vitest'
import {
  encodeTreeProof,
  leafHash,
  MAX_PROOF_BYTES,
  MAX_TREE_LEAVES,
  merkleLevels,
  merklePath,
  parseProof,
  pathLength,
  rootFromPath,
} from '../src/codec/proof.ts'
import { entryBodyHash, entryLeafHash, entrySigningMessage } from '../src/codec/signature.ts'
import { CrdtDocument, type Entry } from '../src/crdt/index.ts'
import {
  type EntrySigner,
  generateEntrySigner,
  headOf,
  type SignatureVerifier,
  signEntries,
  signEntry,
  VerifiedRoots,
  verifyEd25519,
  verifyEntry,
  verifyHead,
  verifyProof,
} from '../src/replica/signing.ts'

const te = new TextEncoder()

/** `count` local writes of one replica of `signer`, signed together as one commit turn signs them. */
function turn(signer: EntrySigner, count: number, salt = ''): Entry[] {
  const doc = new CrdtDocument({ replica: `${signer.peerId}~t` })
  const entries: Entry[] = []
  for (let i = 0; i < count; i++)
    entries.push(doc.put(`k${i}`, te.encode(`{"i":${i}${salt}}`), 'application/json').entry)
  const heads = signEntries(signer, 'ns', entries)
  entries.forEach((entry, i) => {
    entry.signature = heads[i].signature
  })
  return entries
}

/** A verifier that counts the Ed25519 checks it makes (a fresh one has a cache of its own). */
function countingVerifier(): { verify: SignatureVerifier; calls: () => number } {
  let calls = 0
  return {
    verify: (author, message, signature) => {
      calls++
      return verifyEd25519(author, message, signature)
    },
    calls: () => calls,
  }
}

describe('Merkle trees of entry proofs', () => {
  it('gives every leaf of every tree size a path of the length its position needs, leading to the root', () => {
    for (let leaves = 1; leaves <= MAX_TREE_LEAVES; leaves++) {
      const hashes = Array.from({ length: leaves }, (_, i) => leafHash(te.encode(`leaf ${i}`)))
      const levels = merkleLevels(hashes)
      const root = levels[levels.length - 1][0]
      for (let i = 0; i < leaves; i++) {
        const path = merklePath(levels, i)
        expect(path.length).toBe(pathLength(i, leaves))
        expect(path.length).toBeLessThanOrEqual(5)
        expect(rootFromPath(hashes[i], i, leaves, path)).toEqual(root)
        // Another position, a missing or an extra hash: another root or none.
        if (leaves > 1) expect(rootFromPath(hashes[i], (i + 1) % leaves, leaves, path)).not.toEqual(root)
        if (path.length > 0) expect(rootFromPath(hashes[i], i, leaves, path.slice(1))).toBeUndefined()
        expect(rootFromPath(hashes[i], i, leaves, [...path, hashes[0]])).toBeUndefined()
      }
    }
  })

  it('has the RFC 6962 shape: an odd node is promoted, leaves and nodes are hashed apart', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((s) => leafHash(te.encode(s)))
    const levels = merkleLevels([a, b, c])
    expect(levels.map((level) => level.length)).toEqual([3, 2, 1])
    expect(levels[1][1]).toBe(c)
    expect(merklePath(levels, 2)).toEqual([levels[1][0]])
    // An entry's leaf is the hash of its signing message, however it is computed.
    const bodyHash = new Uint8Array(32).fill(9)
    expect(entryLeafHash('ns', 'r~1', 300, bodyHash)).toEqual(
      leafHash(entrySigningMessage('ns', 'r~1', 300, bodyHash)),
    )
    // A leaf is not a node: the same bytes hashed as a leaf give another hash.
    expect(leafHash(new Uint8Array([...a, ...b]))).not.toEqual(levels[1][0])
  })

  it('parses only proofs of one encoding, at most MAX_PROOF_BYTES', () => {
    const signature = new Uint8Array(64).fill(7)
    expect(parseProof(signature)).toMatchObject({ index: 0, leaves: 1, path: [] })
    const path = Array.from({ length: 5 }, (_, i) => new Uint8Array(32).fill(i))
    const deepest = encodeTreeProof(signature, 31, 32, path)
    expect(deepest.length).toBe(MAX_PROOF_BYTES)
    expect(parseProof(deepest)).toMatchObject({ index: 31, leaves: 32 })
    expect(typeof parseProof(encodeTreeProof(signature, 31, 32, path.slice(1)))).toBe('string')
    expect(typeof parseProof(encodeTreeProof(signature, 2, 2, path.slice(0, 1)))).toBe('string')
    expect(typeof parseProof(encodeTreeProof(signature, 0, 33, path))).toBe('string')
    expect(typeof parseProof(encodeTreeProof(signature, 0, 1, path.slice(0, 1)))).toBe('string')
    expect(typeof parseProof(new Uint8Array(63))).toBe('string')
    expect(typeof parseProof(new Uint8Array(MAX_PROOF_BYTES + 32))).toBe('string')
  })
})

describe('entries signed together', () => {
  const signer = generateEntrySigner()

  it('verifies every entry of trees of 1, 2, 3, 5 and 32 leaves, with one signature check per tree', () => {
    for (const size of [1, 2, 3, 5, 32]) {
      const entries = turn(signer, size)
      const counting = countingVerifier()
      for (const entry of entries) expect(verifyEntry('ns', entry, counting.verify)).toBe(true)
      expect(counting.calls()).toBe(1)
      // One leaf: exactly the 64-byte signature an entry signed alone carries.
      if (size === 1) expect(entries[0].signature).toEqual(signEntry(signer, 'ns', entries[0]).signature)
      else expect(entries[0].signature!.length).toBeGreaterThan(64)
    }
  })

  it('signs 33 entries of a turn as two trees: 32 leaves and one signed alone', () => {
    const entries = turn(signer, 33)
    const leaves = entries.map((entry) => parseProof(entry.signature!))
    expect(leaves.slice(0, 32).every((p) => typeof p !== 'string' && p.leaves === 32)).toBe(true)
    expect(entries[32].signature!.length).toBe(64)
    const counting = countingVerifier()
    expect(entries.every((entry) => verifyEntry('ns', entry, counting.verify))).toBe(true)
    expect(counting.calls()).toBe(2)
  })

  it('fails a changed body, counter, namespace, leaf index or path, and a proof from another tree', () => {
    const entries = turn(signer, 5)
    const other = turn(signer, 5, ',"other":1')
    const target = entries[2]
    expect(verifyEntry('ns', target)).toBe(true)
    expect(verifyEntry('ns', { ...target, value: te.encode('{"i":99}') })).toBe(false)
    expect(verifyEntry('ns', { ...target, counter: target.counter + 1 })).toBe(false)
    expect(verifyEntry('other', target)).toBe(false)
    const proof = target.signature!
    const otherIndex = proof.slice()
    otherIndex[64] = 3
    expect(verifyEntry('ns', { ...target, signature: otherIndex })).toBe(false)
    const badPath = proof.slice()
    badPath[badPath.length - 1] ^= 1
    expect(verifyEntry('ns', { ...target, signature: badPath })).toBe(false)
    const badSignature = proof.slice()
    badSignature[0] ^= 1
    expect(verifyEntry('ns', { ...target, signature: badSignature })).toBe(false)
    // The proof of the same position in another turn (both roots verified by now).
    expect(verifyEntry('ns', other[2])).toBe(true)
    expect(verifyEntry('ns', { ...target, signature: other[2].signature })).toBe(false)
    // A tree signed by another author does not prove this replica's entries.
    const stranger = turn(generateEntrySigner(), 5)
    expect(verifyEntry('ns', { ...target, signature: stranger[2].signature })).toBe(false)
  })

  it('remembers only roots whose signature checked out, and only with that signature', () => {
    const entries = turn(signer, 4)
    const roots = new VerifiedRoots()
    const head = headOf(entries[1])
    const forged = head.signature.slice()
    forged[10] ^= 0xff
    const verify = (proof: Uint8Array) =>
      verifyProof('ns', head.replica, head.counter, head.bodyHash, proof, verifyEd25519, roots)
    expect(verify(forged)).toBe(false)
    expect(roots.size).toBe(0)
    expect(verify(head.signature)).toBe(true)
    expect(roots.size).toBe(1)
    // The root is known now, but a proof with another signature for it is still checked, and fails.
    expect(verify(forged)).toBe(false)
    expect(roots.size).toBe(1)
    // A verifier that refuses everything never fills its cache.
    const refusing = new VerifiedRoots()
    expect(
      verifyProof('ns', head.replica, head.counter, head.bodyHash, head.signature, () => false, refusing),
    ).toBe(false)
    expect(refusing.size).toBe(0)
  })

  it('stays bounded: the cache is cleared when full', () => {
    const roots = new VerifiedRoots(3)
    for (let i = 0; i < 3; i++) roots.add(`k${i}`, new Uint8Array(64))
    expect(roots.size).toBe(3)
    roots.add('k3', new Uint8Array(64))
    expect(roots.size).toBe(1)
    expect(roots.has('k3', new Uint8Array(64))).toBe(true)
    expect(roots.has('k0', new Uint8Array(64))).toBe(false)
  })

  it('gives every entry of a tree a signed head that verifies on its own', () => {
    const entries = turn(signer, 3)
    for (const entry of entries) {
      const head = headOf(entry)
      expect(head.bodyHash).toEqual(entryBodyHash(entry))
      expect(verifyHead('ns', head, countingVerifier().verify)).toBe(true)
      expect(verifyHead('ns', { ...head, counter: head.counter + 1 })).toBe(false)
    }
  })
})
