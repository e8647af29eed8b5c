// Child side of ShardingProcess: starts one Sharding node hosting the entity classes exported
// as `entities` by the module named in argv, and answers the parent over IPC.
import { type AckInfo, natsKvStore, Sharding, type ShardingOptions } from "@keyhold/actors";
import { type ShardEvent, silentLogger } from "@keyhold/core";
import { type AckRecord, emitAck } from "./ack-log.js";

type Command =
  | { cmd: "state"; req: number }
  | { cmd: "ask"; req: number; type: string; key: string; handler: string; args: unknown[]; timeout?: number }
  | { cmd: "close"; req: number };

const send = (m: unknown) => process.send?.(m);
const { storeBucket, storeReplicas, ...options } = JSON.parse(process.argv[2] ?? "{}") as ShardingOptions & {
  storeBucket?: string;
  storeReplicas?: number;
};
const entitiesModule = process.argv[3] ?? "";

try {
  const mod = (await import(entitiesModule)) as {
    entities: ShardingOptions["entities"];
    /** Optional: turns an answered ask into an acknowledgement record (see emitAck). */
    ackRecord?: (ack: AckInfo) => Pick<AckRecord, "key" | "op" | "kind" | "value"> | undefined;
  };
  const toRecord = mod.ackRecord;
  const sharding = await Sharding.start({
    // KEYHOLD_CHILD_LOG=1: info, warnings and errors to stderr (ShardingProcess.logs()), each
    // stamped with the ack-log clock (ackClock), to line them up with a test's ack records.
    logger: process.env.KEYHOLD_CHILD_LOG
      ? {
          debug: () => {},
          info: (m: string) => console.error(`${performance.timeOrigin + performance.now()} I ${m}`),
          warn: (m: string) => console.error(`${performance.timeOrigin + performance.now()} W ${m}`),
          error: (m: string) => console.error(`${performance.timeOrigin + performance.now()} E ${m}`),
        }
      : silentLogger,
    ...options,
    ...(toRecord
      ? {
          onAck: (ack: AckInfo) => {
            const r = toRecord(ack);
            if (r) emitAck({ ...r, node: options.nodeId ?? String(process.pid), t0: ack.t0, t1: ack.t1 });
          },
        }
      : {}),
    ...(storeBucket
      ? { store: natsKvStore({ bucket: storeBucket, ...(storeReplicas ? { replicas: storeReplicas } : {}) }) }
      : {}),
    entities: mod.entities ?? [],
  });
  const byType = new Map((mod.entities ?? []).map((c) => [c.type, c]));
  const state = () => ({
    id: sharding.node.id,
    members: sharding.node.members(),
    owned: sharding.node.ownedPartitions(),
    fenced: sharding.node.fenced,
    stats: sharding.stats(),
    handoffs: sharding.handoffs(),
  });
  void (async () => {
    for await (const event of sharding.node.events())
      send({ type: "event", event: event as ShardEvent, at: Date.now() });
  })();
  process.on("message", async (m: Command) => {
    if (m.cmd === "state") send({ type: "reply", req: m.req, value: state() });
    else if (m.cmd === "ask") {
      const cls = byType.get(m.type);
      try {
        if (!cls) throw new Error(`unknown type ${m.type}`);
        const r = await sharding.ask(cls, m.key, m.handler, m.args, m.timeout ? { timeout: m.timeout } : {});
        send({ type: "reply", req: m.req, value: { ok: true, result: r } });
      } catch (err) {
        const e = err as Error & { code?: string };
        send({
          type: "reply",
          req: m.req,
          value: { ok: false, name: e.name, code: e.code, message: e.message },
        });
      }
    } else if (m.cmd === "close") {
      const t0 = Date.now();
      await sharding.close();
      send({
        type: "reply",
        req: m.req,
        value: { started: t0, finished: Date.now(), stats: sharding.stats() },
      });
      process.disconnect();
      process.exit(0);
    }
  });
  send({ type: "ready", ...state() });
} catch (err) {
  const e = err as Error & { code?: string };
  send({ type: "error", name: e.name, code: e.code, message: e.message });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 50);
}
