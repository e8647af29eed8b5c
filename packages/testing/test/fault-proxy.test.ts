// The fault proxy against a plain TCP target: what passes, what is dropped, what is reset.
import { createServer, type Server, Socket } from "node:net";
import { FaultProxy, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A target that greets each connection with "hi;" and echoes what it gets, recording it too. */
async function target(): Promise<{ port: number; received: string[] }> {
  const received: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    s.write("hi;");
    s.on("data", (d) => {
      received.push(d.toString());
      s.write(d);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return { port: address.port, received };
}

interface Conn {
  socket: Socket;
  got: () => string;
  closed: () => boolean;
  error: () => string | undefined;
}

async function dial(port: number): Promise<Conn> {
  const socket = new Socket();
  let got = "";
  let closed = false;
  let error: string | undefined;
  socket.on("data", (d) => {
    got += d.toString();
  });
  socket.on("error", (e: NodeJS.ErrnoException) => {
    error = e.code;
  });
  socket.on("close", () => {
    closed = true;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
    socket.connect(port, "127.0.0.1");
  });
  cleanups.push(() => {
    socket.destroy();
  });
  return { socket, got: () => got, closed: () => closed, error: () => error };
}

/** Resolves true once a connection is closed without a byte having arrived. */
function dialRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let got = 0;
    socket.on("data", (d) => {
      got += d.length;
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(got === 0));
    socket.connect(port, "127.0.0.1");
  });
}

async function proxyTo(port: number): Promise<FaultProxy> {
  const p = await FaultProxy.start({ targetPort: port });
  cleanups.push(() => p.close());
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("FaultProxy", () => {
  it("forwards both ways and counts bytes and connections", async () => {
    const t = await target();
    const proxy = await proxyTo(t.port);
    expect(proxy.port).not.toBe(t.port);
    const c = await dial(proxy.port);
    c.socket.write("ping;");
    await waitFor(() => c.got() === "hi;ping;");
    expect(proxy.stats).toMatchObject({
      accepted: 1,
      open: 1,
      forwardBytes: 5,
      backwardBytes: 8,
      refused: 0,
    });
  });

  it("cut resets open connections and new ones until heal", async () => {
    const t = await target();
    const proxy = await proxyTo(t.port);
    const c = await dial(proxy.port);
    await waitFor(() => c.got() === "hi;");
    proxy.cut();
    await waitFor(() => c.closed());
    expect(c.error()).toBe("ECONNRESET");
    const d = await dialRefused(proxy.port);
    expect(d).toBe(true);
    expect(proxy.stats).toMatchObject({ refused: 1, reset: 1, open: 0 });
    proxy.heal();
    const e = await dial(proxy.port);
    e.socket.write("back;");
    await waitFor(() => e.got() === "hi;back;");
  });

  it("blackhole keeps connections open, drops bytes both ways, and heal resets the damaged ones", async () => {
    const t = await target();
    const proxy = await proxyTo(t.port);
    const c = await dial(proxy.port);
    await waitFor(() => c.got() === "hi;");
    proxy.blackhole();
    c.socket.write("lost;");
    const late = await dial(proxy.port); // accepted, but its greeting is dropped
    await sleep(200);
    expect(c.closed()).toBe(false);
    expect(late.closed()).toBe(false);
    expect(c.got()).toBe("hi;");
    expect(late.got()).toBe("");
    expect(t.received).toEqual([]);
    expect(proxy.stats.forwardDropped).toBe(5);
    expect(proxy.stats.backwardDropped).toBe(3);
    expect(proxy.stats.open).toBe(2);
    proxy.heal();
    await waitFor(() => c.closed() && late.closed());
    const fresh = await dial(proxy.port);
    fresh.socket.write("ok;");
    await waitFor(() => fresh.got() === "hi;ok;");
  });

  it("a one-way blackhole drops what the dialer sends and still delivers what the target sends", async () => {
    const t = await target();
    const proxy = await proxyTo(t.port);
    proxy.blackhole("forward");
    const c = await dial(proxy.port);
    await waitFor(() => c.got() === "hi;");
    c.socket.write("unheard;");
    await sleep(200);
    expect(t.received).toEqual([]);
    expect(proxy.stats.forwardDropped).toBe(8);

    proxy.heal();
    const d = await dial(proxy.port);
    await waitFor(() => d.got() === "hi;");
    proxy.blackhole("backward");
    d.socket.write("heard;");
    await waitFor(() => t.received.includes("heard;"));
    await sleep(100);
    expect(d.got()).toBe("hi;"); // the greeting came before the blackhole; the echo did not
  });

  it("delay holds bytes in each direction and keeps their order", async () => {
    const t = await target();
    const proxy = await proxyTo(t.port);
    const c = await dial(proxy.port);
    await waitFor(() => c.got() === "hi;");
    proxy.delay(150);
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      c.socket.write(`${i};`);
      await sleep(10);
    }
    proxy.delay({ forward: 0, backward: 0 }); // shrinking the delay must not reorder
    c.socket.write("5;");
    await waitFor(() => c.got().endsWith("5;"));
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(c.got().replace("hi;", "")).toBe("0;1;2;3;4;5;");
  });

  it("validates its options", async () => {
    await expect(FaultProxy.start({ targetPort: 0 })).rejects.toThrow(/`targetPort`.*got 0/);
    const t = await target();
    const proxy = await proxyTo(t.port);
    expect(() => proxy.delay(-1)).toThrow(/`delay.forward`.*got -1/);
    expect(() => proxy.blackhole("sideways" as "forward")).toThrow(/`direction`.*sideways/);
  });
});
