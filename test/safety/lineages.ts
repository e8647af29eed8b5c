// The verdict of the plain-ledger pause tests (pause-queued, pause-mid-handler): which owner
// acknowledged what, judged by lineage (a start of the ledger from initialState()).
import type { AckRecord } from "@keyhold/testing";

/** A ledger's final state: its count, its lineage, the ids of the adds it applied. */
export type Final = { n: number; born: string; ops: string[] };

/**
 * Per key, in order of acknowledgement: a lineage (a start from initialState()) is superseded
 * once another one has acknowledged after it; an acknowledgement from a superseded lineage is a
 * second owner acting. An acknowledged add missing from the final state is the documented
 * restart loss when its lineage was replaced by a newer one and it was acknowledged before that
 * (the interim owner started afresh); anything else lost is a bug.
 */
export function judgeLineages(records: readonly AckRecord[], final: ReadonlyMap<string, Final>) {
  const superseded: AckRecord[] = [];
  const stale = new Set<AckRecord>();
  const byKey = new Map<string, AckRecord[]>();
  for (const r of records) {
    const list = byKey.get(r.key);
    if (list) list.push(r);
    else byKey.set(r.key, [r]);
  }
  for (const list of byKey.values()) {
    list.sort((a, b) => a.t1 - b.t1);
    const seen = new Set<unknown>();
    let current: unknown;
    for (const r of list) {
      if (r.value === current) continue;
      if (seen.has(r.value)) {
        superseded.push(r);
        stale.add(r);
      } else {
        seen.add(r.value);
        current = r.value;
      }
    }
  }
  const lost = records.filter((r) => !final.get(r.key)?.ops.includes(r.op));
  const documented = lost.filter((r) => !stale.has(r) && r.value !== final.get(r.key)?.born);
  const doc = new Set(documented);
  const beyond = lost.filter((r) => !doc.has(r));
  return { superseded, lost, documented, beyond };
}
