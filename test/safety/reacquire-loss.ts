// The counting of the re-acquire pause test: which acknowledged adds are the documented loss of
// plain entities (the paused node's state, restarted from initialState() by an interim owner),
// and, for the ones beyond it, what is known about each (who acknowledged it, when, in which
// lineage).
import type { AckRecord, Operation } from "@keyhold/testing";
import type { TallyAck } from "./reacquire-fixtures.js";

export type FinalState = ReadonlyMap<string, { n: number; born: string; ops: string[] }>;

export interface PauseTimes {
  /** Read just before the SIGSTOP was sent. */
  readonly pauseAt: number;
  /** Read just after the call that sent it returned. */
  readonly pausedAt: number;
  /** Read just before the SIGCONT was sent. */
  readonly resumeAt: number;
  readonly victimPid: number;
}

/**
 * The documented loss: acknowledged adds that the final state lacks, applied in a lineage it no
 * longer descends from, before the victim stopped. By any node before `pauseAt`; by the victim
 * itself before `resumeAt` too. The SIGSTOP lands some time after `pauseAt` is read: the kill
 * call, and whatever preempts the test process between the two (a busy child process ran on
 * past the reading in 30 of 300 trials on a loaded 2-core machine, once for 3.3 ms; the victim
 * of this test ran 116 adds after it in a run that had just sent it a burst of asks). From then
 * until the SIGCONT it runs nothing at all. So an add the victim ran before `resumeAt` ran
 * before it stopped, and one it ran after the SIGCONT is never counted here.
 */
export function documentedLoss(acked: readonly Operation[], final: FinalState, t: PauseTimes): Operation[] {
  return acked.filter((o) => {
    const out = o.output as TallyAck;
    const f = final.get(o.key);
    if (f === undefined || out.born === f.born || f.ops.includes(o.input as string)) return false;
    return out.at < t.pauseAt || (out.pid === t.victimPid && out.at < t.resumeAt);
  });
}

/** One line per operation in `extra`, plus each key's lineages, relative to the pause. */
export function describeExtraLoss(
  extra: readonly Operation[],
  acked: readonly Operation[],
  nodeAcks: readonly AckRecord[],
  final: FinalState,
  t: PauseTimes,
): string {
  const rel = (x: number) => (x - t.pauseAt).toFixed(3);
  const byOp = new Map<string, AckRecord[]>();
  for (const r of nodeAcks) {
    if (r.kind !== "write") continue;
    const list = byOp.get(r.op) ?? [];
    list.push(r);
    byOp.set(r.op, list);
  }
  const lines = [
    `victim ${t.victimPid}; pause() took ${(t.pausedAt - t.pauseAt).toFixed(3)} ms; resume at +${rel(t.resumeAt)} ms`,
  ];
  for (const o of extra) {
    const out = o.output as TallyAck;
    const f = final.get(o.key);
    const on = (byOp.get(o.input as string) ?? []).map((r) => `${r.node}@+${rel(r.t0)}`).join(",");
    lines.push(
      `${o.input} ${o.key}: n=${out.n} born=${out.born} pid=${out.pid} at=+${rel(out.at)} invoked=+${rel(o.invokedAt)} ` +
        `completed=+${rel(o.completedAt)}; node acks [${on}]; final born=${f?.born} n=${f?.n}`,
    );
  }
  for (const key of new Set(extra.map((o) => o.key))) {
    const lineages = new Map<string, { from: number; to: number; count: number; maxN: number }>();
    for (const o of acked) {
      if (o.key !== key) continue;
      const out = o.output as TallyAck;
      const l = lineages.get(out.born) ?? { from: out.at, to: out.at, count: 0, maxN: 0 };
      l.from = Math.min(l.from, out.at);
      l.to = Math.max(l.to, out.at);
      l.count++;
      l.maxN = Math.max(l.maxN, out.n);
      lineages.set(out.born, l);
    }
    for (const [born, l] of lineages)
      lines.push(
        `  ${key} lineage ${born}: ${l.count} acks, +${rel(l.from)}..+${rel(l.to)} ms, max n ${l.maxN}`,
      );
  }
  return lines.join("\n");
}
