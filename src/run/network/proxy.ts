// Published ports on the bridge: a small userspace proxy inside gcr's own process, as
// docker-proxy. It listens on the host (127.0.0.1 included, which DNAT cannot reach without
// route_localnet) and connects to the container's address over gcr0. Other containers reach
// a published port through the gateway address (10.88.0.1:HOSTPORT), which is the host too.
// The listeners live exactly as long as the container: stop() closes them and every
// connection, so nothing keeps gcr's event loop alive after the container exits.
import type { Socket, TCPSocketListener, udp } from "bun";
import { GcrError } from "../../errors.ts";
import { debug } from "../../log.ts";
import { describeMapping, type PortMapping } from "./ports.ts";

interface Side {
  peer?: Socket<Side>;
  /** Bytes waiting for the peer to become writable (or to connect). */
  queue: Uint8Array[];
  /** This side sent FIN; once its queue is flushed the FIN is passed on (half-close). */
  ended: boolean;
  finForwarded: boolean;
}

const side = (peer?: Socket<Side>): Side => ({ peer, queue: [], ended: false, finForwarded: false });

/** Move what `from` queued to `to`; pass on a half-close (clients such as nc send FIN first). */
function pump(to: Socket<Side> | undefined, from: Side, chunk?: Uint8Array): void {
  if (chunk) from.queue.push(chunk);
  if (!to) return;
  while (from.queue.length > 0) {
    const c = from.queue[0]!;
    const n = to.write(c);
    if (n < c.length) {
      from.queue[0] = c.subarray(Math.max(n, 0));
      return; // the rest on drain
    }
    from.queue.shift();
  }
  if (from.ended && !from.finForwarded) {
    from.finForwarded = true;
    to.shutdown();
    // Both directions done: close both sockets.
    if (to.data.finForwarded) {
      to.end();
      to.data.peer?.end();
    }
  }
}

export interface Proxy {
  /** The mappings with the ports actually bound (an asked-for 0 becomes a real port). */
  mappings: PortMapping[];
  stop(): void;
}

export async function startProxy(maps: PortMapping[], target: string): Promise<Proxy> {
  const tcp: TCPSocketListener<Side>[] = [];
  const udps: { close(): void }[] = [];
  const conns = new Set<Socket<Side>>();
  const bound: PortMapping[] = [];
  const stop = () => {
    for (const l of tcp) l.stop(true);
    for (const c of conns) c.terminate();
    for (const u of udps) u.close();
  };
  try {
    for (const m of maps) {
      if (m.proto === "tcp") {
        const l = listenTcp(m, target, conns);
        tcp.push(l);
        bound.push({ ...m, hostPort: l.port });
      } else {
        const u = await listenUdp(m, target, udps);
        bound.push({ ...m, hostPort: u.port });
      }
      debug("net", `publish ${describeMapping(bound.at(-1)!)}: gcr proxies to ${target}:${m.containerPort}`);
    }
  } catch (e) {
    stop();
    throw e;
  }
  return { mappings: bound, stop };
}

function listenTcp(m: PortMapping, target: string, conns: Set<Socket<Side>>): TCPSocketListener<Side> {
  const handlers = {
    data(s: Socket<Side>, d: Uint8Array) {
      pump(s.data.peer, s.data, new Uint8Array(d));
    },
    drain(s: Socket<Side>) {
      // s is writable again: flush what its peer had queued for it.
      const other = s.data.peer;
      if (other) pump(s, other.data);
    },
    end(s: Socket<Side>) {
      s.data.ended = true;
      pump(s.data.peer, s.data);
    },
    close(s: Socket<Side>) {
      conns.delete(s);
      s.data.peer?.end();
    },
    error(s: Socket<Side>) {
      s.end();
    },
  };
  try {
    return Bun.listen<Side>({
      hostname: m.hostIp,
      port: m.hostPort,
      allowHalfOpen: true,
      socket: {
        ...handlers,
        open(client) {
          client.data = side();
          conns.add(client);
          Bun.connect<Side>({
            hostname: target,
            port: m.containerPort,
            data: side(client),
            allowHalfOpen: true,
            socket: {
              ...handlers,
              open(up) {
                conns.add(up);
                client.data.peer = up;
                pump(up, client.data);
              },
              connectError() {
                client.end();
              },
            },
          }).catch(() => client.end());
        },
      },
    });
  } catch (e) {
    throw new GcrError(`publish ${describeMapping(m)}: cannot listen on ${m.hostIp}:${m.hostPort}`, { cause: e, hint: "is the port already in use?" });
  }
}

async function listenUdp(m: PortMapping, target: string, all: { close(): void }[]): Promise<udp.Socket<"buffer">> {
  // One connected socket per client, so replies find their way back; idle ones are closed.
  const clients = new Map<string, { sock: Promise<udp.ConnectedSocket<"buffer">>; last: number }>();
  let listener: udp.Socket<"buffer">;
  try {
    listener = await Bun.udpSocket({
      hostname: m.hostIp,
      port: m.hostPort,
      socket: {
        data(_s, buf, port, addr) {
          const key = `${addr}:${port}`;
          let c = clients.get(key);
          if (!c) {
            const sock = Bun.udpSocket({
              connect: { hostname: target, port: m.containerPort },
              socket: { data: (_u, reply) => void listener.send(reply, port, addr) },
            });
            sock.then((s) => all.push(s)).catch(() => clients.delete(key));
            c = { sock, last: 0 };
            clients.set(key, c);
          }
          c.last = performance.now();
          c.sock.then((s) => s.send(buf)).catch(() => {});
        },
      },
    });
  } catch (e) {
    throw new GcrError(`publish ${describeMapping(m)}: cannot listen on ${m.hostIp}:${m.hostPort}`, { cause: e, hint: "is the port already in use?" });
  }
  all.push(listener);
  const sweep = setInterval(() => {
    for (const [k, c] of clients) {
      if (performance.now() - c.last < 60_000) continue;
      clients.delete(k);
      c.sock.then((s) => s.close()).catch(() => {});
    }
  }, 10_000);
  sweep.unref();
  return listener;
}
