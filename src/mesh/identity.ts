/**
 * The node's persistent identity: an Ed25519 private key in the data dir, from which the PeerId (and so
 * the replica id) derives. Losing or replacing this file makes the node a different peer, so:
 *
 * - it is created once, by write-temp → fsync → link (no-clobber rename) → fsync dir, mode 0600;
 * - a file that exists but cannot be parsed is an error carrying the path, never silently replaced;
 * - a file readable by group or others is refused, as ssh refuses such private keys.
 */
import { randomBytes } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { link, mkdir, open, rename, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { KEY_FILE_MODE, KEY_FILE_NAME, MAX_KEY_FILE_BYTES } from './constants.ts'
import { CorruptKeyFileError, InsecureKeyFileError, KeyFileIOError } from './errors.ts'

export interface IdentityInit {
  /** Directory that holds the key file; created (mode 0700) if missing. */
  dataDir: string
  /** Key file name inside `dataDir`. Default: `peer.key`. */
  fileName?: string
  /**
   * Refuse a key file that group or others can read or write. Default: true (ignored on Windows, where
   * POSIX modes mean nothing).
   */
  strictMode?: boolean
}

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
  /** Absolute or as-given path of the key file. */
  path: string
  /** True when this call created the key (first start of this data dir). */
  created: boolean
}

/** Loads the key in `dataDir`, creating it on first use. Throws CorruptKeyFileError, InsecureKeyFileError, KeyFileIOError. */
export async function loadOrCreateIdentity(init: IdentityInit): Promise<Identity> {
  const path = join(init.dataDir, init.fileName ?? KEY_FILE_NAME)
  const strictMode = (init.strictMode ?? true) && process.platform !== 'win32'

  const existing = await readKeyFile(path, strictMode)
  if (existing != null) {
    return { privateKey: existing, peerId: peerIdFromPrivateKey(existing), path, created: false }
  }

  await ensureDir(init.dataDir)
  const privateKey = await generateKeyPair('Ed25519')
  const won = await writeKeyFileNoClobber(path, privateKeyToProtobuf(privateKey))
  if (!won) {
    // Another process created the key between our read and our link: theirs is the identity.
    const theirs = await readKeyFile(path, strictMode)
    if (theirs == null)
      throw new KeyFileIOError(path, 'read back', { cause: new Error('vanished after EEXIST') })
    return { privateKey: theirs, peerId: peerIdFromPrivateKey(theirs), path, created: false }
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey), path, created: true }
}

/** Parses key file bytes; exported for tests and for tools that inspect a data dir. */
export function decodeKeyFile(path: string, bytes: Uint8Array): PrivateKey {
  if (bytes.byteLength === 0) throw new CorruptKeyFileError(path, 'empty file')
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new CorruptKeyFileError(path, `not a protobuf private key: ${(err as Error).message}`, {
      cause: err,
    })
  }
  if (key.type !== 'Ed25519')
    throw new CorruptKeyFileError(path, `expected an Ed25519 key, found ${key.type}`)
  return key
}

async function readKeyFile(path: string, strictMode: boolean): Promise<PrivateKey | null> {
  let fh: Awaited<ReturnType<typeof open>>
  try {
    // O_NOFOLLOW: a symlink planted at the key path is not followed (it is reported as corrupt below).
    fh = await open(path, fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
    if (code === 'ELOOP') throw new CorruptKeyFileError(path, 'is a symbolic link')
    throw new KeyFileIOError(path, 'open', { cause: err })
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new CorruptKeyFileError(path, 'not a regular file')
    if (strictMode && (st.mode & 0o077) !== 0) throw new InsecureKeyFileError(path, st.mode & 0o777)
    if (st.size > MAX_KEY_FILE_BYTES) throw new CorruptKeyFileError(path, `${st.size} bytes is too large`)
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1)
    let filled = 0
    while (filled < buf.length) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, filled)
      if (bytesRead === 0) break
      filled += bytesRead
    }
    if (filled > MAX_KEY_FILE_BYTES) throw new CorruptKeyFileError(path, 'too large')
    return decodeKeyFile(path, new Uint8Array(buf.buffer, buf.byteOffset, filled))
  } catch (err) {
    if (err instanceof CorruptKeyFileError || err instanceof InsecureKeyFileError) throw err
    throw new KeyFileIOError(path, 'read', { cause: err })
  } finally {
    await fh.close()
  }
}

/**
 * Writes `bytes` to `path` durably, without ever replacing an existing file.
 * Returns false if `path` already existed (someone else won the race).
 */
export async function writeKeyFileNoClobber(
  path: string,
  bytes: Uint8Array,
  mode: number = KEY_FILE_MODE,
): Promise<boolean> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
  try {
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode)
    try {
      let written = 0
      while (written < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, written, bytes.byteLength - written)
        written += bytesWritten
      }
      // The umask may have narrowed the mode; it can only have removed bits, but make it exact.
      await fh.chmod(mode)
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw new KeyFileIOError(path, 'write', { cause: err })
  }

  let won = true
  try {
    // link() is an atomic rename that fails with EEXIST instead of replacing the target.
    await link(tmp, path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      won = false
    } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EOPNOTSUPP') {
      // Filesystems without hard links (FAT, some network mounts): plain rename, tiny race accepted.
      try {
        await rename(tmp, path)
      } catch (err2) {
        await unlink(tmp).catch(() => {})
        throw new KeyFileIOError(path, 'rename into place', { cause: err2 })
      }
      await fsyncDir(dirname(path), path)
      return true
    } else {
      await unlink(tmp).catch(() => {})
      throw new KeyFileIOError(path, 'link into place', { cause: err })
    }
  }
  await unlink(tmp).catch(() => {})
  if (won) await fsyncDir(dirname(path), path)
  return won
}

async function ensureDir(dir: string): Promise<void> {
  let created: string | undefined
  try {
    created = await mkdir(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw new KeyFileIOError(join(dir, KEY_FILE_NAME), 'create data dir for', { cause: err })
  }
  // A freshly created dir is only durable once its parent's entry is.
  if (created != null) await fsyncDir(dirname(dir), join(dir, KEY_FILE_NAME))
}

async function fsyncDir(dir: string, forPath: string): Promise<void> {
  if (process.platform === 'win32') return // directories cannot be opened for fsync on Windows
  try {
    const fh = await open(dir, fsc.O_RDONLY)
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    // An fsync error means we do not know what is on disk: fatal, never retried.
    throw new KeyFileIOError(forPath, 'fsync the directory of', { cause: err })
  }
}
