// Child side of NodeProcess: starts one ShardNode from a JSON config in argv and answers the
// parent over IPC (state, place, close) while forwarding every ownership event.
import { ShardNode, type ShardNodeOptions, silentLogger } from "@keyhold/core";

type Command =
  | { cmd: "state"; req: number }
  | { cmd: "place"; req: number; keys: string[] }
  | { cmd: "close"; req: number };

const send = (m: unknown) => process.send?.(m);
const options = JSON.parse(process.argv[2] ?? "{}") as ShardNodeOptions;

try {
  const node = await ShardNode.start({ logger: silentLogger, ...options });
  const state = () => ({
    id: node.id,
    members: node.members(),
    owned: node.ownedPartitions(),
    fenced: node.fenced,
    stats: node.stats(),
  });
  void (async () => {
    for await (const event of node.events()) send({ type: "event", event, at: Date.now() });
  })();
  process.on("message", async (m: Command) => {
    if (m.cmd === "state") send({ type: "reply", req: m.req, value: state() });
    else if (m.cmd === "place")
      send({ type: "reply", req: m.req, value: m.keys.map((k) => node.place(k) ?? null) });
    else if (m.cmd === "close") {
      await node.close();
      send({ type: "reply", req: m.req, value: Date.now() });
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
