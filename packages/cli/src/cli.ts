// The `keyhold` command line: parses the arguments, connects, runs one command. `run` returns
// the exit code instead of exiting, so tests drive it in-process.
import { KeyholdError } from "@keyhold/core";
import { intOption, type Parsed, parse } from "./args.js";
import { AdminClient } from "./client.js";
import { drain } from "./drain.js";
import { UsageError } from "./errors.js";
import { bold, green, red, type Style, table, yellow } from "./format.js";
import { handoffsText, type Io, json, membersText, out, statsText } from "./output.js";
import {
  entitiesView,
  handoffsView,
  healthView,
  membersView,
  ownersView,
  placeView,
  ringView,
  statsView,
} from "./view.js";
import { dashboard, watch } from "./watch.js";

export { helpText } from "./commands.js";
export type { Io } from "./output.js";

/** Runs one command line; resolves with the exit code. Errors become one line on stderr. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const style: Style = { color: io.stdout.isTTY === true && !io.env.NO_COLOR };
  try {
    const p = parse(argv, io);
    if (!p) return 0;
    const client = await AdminClient.connect(p.cluster, p.connect);
    try {
      return await execute(p, client, io, style);
    } finally {
      await client.close();
    }
  } catch (err) {
    const message =
      err instanceof KeyholdError
        ? err.message
        : err instanceof Error
          ? `${err.name}: ${err.message}`
          : String(err);
    const stderrStyle: Style = { color: style.color };
    io.stderr.write(`${red(stderrStyle, "keyhold:")} ${message.split("\n")[0]}\n`);
    return 1;
  }
}

async function execute(p: Parsed, client: AdminClient, io: Io, style: Style): Promise<number> {
  const gather = () => client.gather(p.timeoutMs);
  switch (p.command) {
    case "members": {
      const v = membersView(p.cluster, await gather());
      if (p.json) json(io, v);
      else out(io, membersText(style, v));
      return 0;
    }
    case "ring": {
      const v = ringView(p.cluster, await gather());
      if (p.json) json(io, v);
      else {
        const rows = v.partitions.map((x) => [
          String(x.partition),
          x.owner ?? (x.claimedBy.length > 1 ? yellow(style, x.claimedBy.join("+")) : red(style, "-")),
          x.expected ?? "-",
          x.state === "ready" ? "ready" : x.state === null ? "-" : yellow(style, x.state),
        ]);
        out(
          io,
          `${bold(style, `cluster ${p.cluster}`)}: ${v.ringSize} partitions, hash ${v.hash}, ${v.members.length} members\n` +
            table(style, ["PARTITION", "OWNER", "EXPECTED", "STATE"], rows),
        );
      }
      return 0;
    }
    case "place": {
      const v = placeView(await gather(), p.args[0]!);
      if (p.json) json(io, v);
      else out(io, `${v.key}: partition ${v.partition}, owner ${v.owner ?? "(no live member)"}`);
      return 0;
    }
    case "owners": {
      const n = intOption("N", p.args[1], 1, 1, 1000);
      const v = ownersView(await gather(), p.args[0]!, n);
      if (p.json) json(io, v);
      else out(io, `${v.key}: partition ${v.partition}, owners ${v.owners.join(", ") || "(no live member)"}`);
      return 0;
    }
    case "entities": {
      const v = entitiesView(await gather());
      if (p.json) json(io, v);
      else {
        const rows = v.types.map((t) => [
          t.type,
          String(t.active),
          String(t.known),
          Object.entries(t.nodes)
            .map(([id, c]) => `${id}:${c.active}/${c.known}`)
            .join(" "),
        ]);
        rows.push([bold(style, "total"), String(v.total.active), String(v.total.known), ""]);
        out(io, table(style, ["TYPE", "ACTIVE", "KNOWN", "PER NODE (active/known)"], rows));
      }
      return 0;
    }
    case "handoffs": {
      const v = handoffsView(await gather());
      if (p.json) json(io, v);
      else out(io, handoffsText(style, v));
      return 0;
    }
    case "stats": {
      const v = statsView(await gather());
      if (p.json) json(io, v);
      else out(io, statsText(style, v.nodes));
      return 0;
    }
    case "health": {
      const v = healthView(await gather());
      if (p.json) json(io, v);
      else
        out(
          io,
          v.healthy
            ? `${green(style, "healthy")}: ${v.answered} of ${v.members} members answered`
            : `${red(style, "unhealthy")}: ${v.problems.join("; ")}`,
        );
      return v.healthy ? 0 : 1;
    }
    case "watch":
      return watch(p, client, io, style);
    case "drain":
      return drain(p, client, io);
    case "dashboard":
      return dashboard(p, client, io);
  }
  throw new UsageError(`unknown command "${p.command}"`);
}
