/**
 * The mesh key of a private mesh: the libp2p pnet pre-shared key, stored in the pnet file format
 * (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits). Peers without it fail the handshake before
 * anything else is said, so it is as secret as `peer.key`: created with mode 0600, and a file that
 * group or others can read is refused.
 */
import { randomBytes } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { open } from 'node:fs/promises'
import { KEY_FILE_MODE } from './constants.ts'
import { CorruptKeyFileError, InsecureKeyFileError, KeyFileIOError } from './errors.ts'
import { writeKeyFileNoClobber } from './identity.ts'

/** Bytes of the pre-shared key itself (pnet uses 32-byte keys). */
export const SWARM_KEY_BYTES = 32
/** A swarm key file is 95 bytes; anything much larger is not one. */
const MAX_SWARM_KEY_FILE_BYTES = 1024
const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'

/** The file content for a key (what `generateSwarmKey` makes for a random one). */
export function encodeSwarmKeyFile(psk: Uint8Array): Uint8Array {
  if (psk.byteLength !== SWARM_KEY_BYTES) throw new RangeError(`a swarm key has ${SWARM_KEY_BYTES} bytes`)
  return new TextEncoder().encode(HEADER + Buffer.from(psk).toString('hex'))
}

/** The 32 key bytes of a swarm key file; throws CorruptKeyFileError when the file is not one. */
export function decodeSwarmKeyFile(path: string, bytes: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(bytes).split(/\r\n|\r|\n/)
  if (
    lines[0] !== '/key/swarm/psk/1.0.0/' ||
    lines[1] !== '/base16/' ||
    !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')
  ) {
    throw new SwarmKeyFileError(path, 'not a swarm key file (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)')
  }
  return new Uint8Array(Buffer.from(lines[2], 'hex'))
}

/** A new random swarm key file's content. */
export function newSwarmKeyFile(): Uint8Array {
  return encodeSwarmKeyFile(new Uint8Array(randomBytes(SWARM_KEY_BYTES)))
}

/**
 * Reads a swarm key file: undefined when it does not exist; refuses one that group or others can
 * read or write (ignored on Windows), a symbolic link, or one that is not a swarm key.
 */
export async function readSwarmKeyFile(
  path: string,
  options: { strictMode?: boolean } = {},
): Promise<{ file: Uint8Array; psk: Uint8Array } | undefined> {
  const strictMode = (options.strictMode ?? true) && process.platform !== 'win32'
  let fh: Awaited<ReturnType<typeof open>>
  try {
    fh = await open(path, fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new SwarmKeyFileError(path, 'is a symbolic link')
    throw new KeyFileIOError(path, 'open', { cause: err })
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new SwarmKeyFileError(path, 'not a regular file')
    if (strictMode && (st.mode & 0o077) !== 0) throw new InsecureKeyFileError(path, st.mode & 0o777)
    if (st.size > MAX_SWARM_KEY_FILE_BYTES) throw new SwarmKeyFileError(path, `${st.size} bytes is too large`)
    const buf = Buffer.alloc(MAX_SWARM_KEY_FILE_BYTES)
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    const file = new Uint8Array(buf.subarray(0, bytesRead))
    return { file, psk: decodeSwarmKeyFile(path, file) }
  } catch (err) {
    if (err instanceof SwarmKeyFileError || err instanceof InsecureKeyFileError) throw err
    throw new KeyFileIOError(path, 'read', { cause: err })
  } finally {
    await fh.close()
  }
}

/**
 * Writes a swarm key file (mode 0600, durably) unless one exists. Returns false when a file was
 * already there: it is never replaced here.
 */
export async function writeSwarmKeyFile(path: string, file: Uint8Array): Promise<boolean> {
  return writeKeyFileNoClobber(path, file, KEY_FILE_MODE)
}

/** A swarm key file that exists but is not a usable key. */
export class SwarmKeyFileError extends CorruptKeyFileError {
  constructor(path: string, reason: string) {
    super(path, reason)
    this.message = `swarm key ${path} is not usable (${reason}); restore it from another peer of the mesh, or join again with an invite ticket`
  }
}
