import net from 'node:net'

/** A loopback port that was free a moment ago (listen on 0, read it, close): for a server to start on, or to be refused on. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}
