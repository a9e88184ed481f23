import { request } from 'node:http'

/** One HTTP request to a daemon through its relay's Unix socket. */

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: answers are inspected field by field
  json: any
}

/** The request reached no daemon (the relay said so): it certainly had no effect. */
export class DaemonDownError extends Error {
  override name = 'DaemonDownError'
}

export function call(
  socketPath: string,
  method: string,
  path: string,
  options: { body?: string; contentType?: string; timeoutMs: number },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {}
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json'
      headers['content-length'] = String(Buffer.byteLength(options.body))
    }
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('error', reject)
      res.on('end', () => {
        if (res.headers['x-chaos-relay'] === 'daemon-down') {
          reject(new DaemonDownError('the daemon is down'))
          return
        }
        let json: unknown
        try {
          json = text === '' ? undefined : JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.setTimeout(options.timeoutMs, () =>
      req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
    )
    req.on('error', reject)
    req.end(options.body)
  })
}
