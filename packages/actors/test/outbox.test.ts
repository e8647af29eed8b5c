// The hand-off records a releasing node keeps (outbox.ts) and the restart record of a dropped
// pre-fence record (slots.ts): the two rules behind two re-acquire counterexamples of issue 8,
// checked directly. An ack removes only what was served to the pull it names; a restart beats
// every record of an older tenure and nothing newer.
import { Entity } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { defineEntity } from "../src/entity.js";
import { Outbox } from "../src/outbox.js";
import { isNewer, SlotTable } from "../src/slots.js";
import type { EntityRecord } from "../src/wire.js";

class Box extends Entity<{ n: number }> {
  static readonly type = "box";
  initialState() {
    return { n: 0 };
  }
  get() {
    return this.state.n;
  }
}

const rec = (key: string, acq: number, ver: number): EntityRecord => ({
  t: "box",
  key,
  s: { n: ver },
  ver,
  acq,
  act: false,
});

describe("outbox acks", () => {
  const outbox = () => new Outbox({ clock: new VirtualClock(), logger: silentLogger, nodeId: "n1" });

  it("forgets the records served to the pull that acknowledges them", () => {
    const o = outbox();
    o.put(3, [rec("a", 10, 1)]);
    o.served(3, "n2", 20, 0);
    expect(o.ack(3, "n2", 20)).toEqual([rec("a", 10, 1)]);
    expect(o.peek(3)).toBeUndefined();
  });

  it("keeps them for an ack that names another pull, or none", () => {
    const o = outbox();
    o.put(3, [rec("a", 10, 1)]);
    expect(o.ack(3, "n2", 20)).toBeUndefined(); // never served
    o.served(3, "n2", 20, 0);
    expect(o.ack(3, "n2", 19)).toBeUndefined(); // an earlier pull of the same node
    expect(o.ack(3, "n4", 20)).toBeUndefined(); // another node
    expect(o.ack(3, "n2", 0)).toBeUndefined(); // an ack without an epoch names no pull
    expect(o.peek(3)).toHaveLength(1);
  });

  it("keeps records put after they were served: a late duplicate ack does not drop them", () => {
    const o = outbox();
    o.put(3, [rec("a", 10, 1)]);
    o.served(3, "n2", 20, 0);
    o.take(3); // this node re-acquired the partition and served it again ...
    o.put(3, [rec("a", 30, 2)]); // ... then released it with newer records
    expect(o.ack(3, "n2", 20)).toBeUndefined();
    expect(o.peek(3)).toEqual([rec("a", 30, 2)]);
  });

  it("keeps an entry whose pages went to two pulls", () => {
    const o = outbox();
    o.put(3, [rec("a", 10, 1), rec("b", 10, 1)]);
    o.served(3, "n2", 20, 0);
    o.served(3, "n4", 25, 1);
    expect(o.ack(3, "n2", 20)).toBeUndefined();
    expect(o.ack(3, "n4", 25)).toBeUndefined();
  });
});

describe("restart records", () => {
  const def = defineEntity(Box);

  it("restarts an entity whose newest record was dropped, under the new epoch, beating older records", () => {
    const slots = new SlotTable();
    const slot = slots.restart(def, rec("a", 30, 4), 3, 50);
    expect(slot).toBeDefined();
    expect({ acq: slot!.acq, ver: slot!.version, state: slot!.state }).toEqual({
      acq: 50,
      ver: 0,
      state: undefined,
    });
    // An older record that still waits somewhere (another node's pre-fence outbox) loses to it.
    expect(slots.install(def, rec("a", 10, 9), 3)).toBeUndefined();
    const r = slots.record(slot!);
    expect(isNewer(r, rec("a", 30, 4))).toBe(true);
    // The restart travels as a record: installed elsewhere, it is a fresh entity.
    const other = new SlotTable();
    const there = other.install(def, r, 3);
    expect({ ver: there!.version, state: there!.state, acq: there!.acq }).toEqual({
      ver: 0,
      state: undefined,
      acq: 50,
    });
  });

  it("does not replace a newer record this node holds (pulled from whoever served meanwhile)", () => {
    const slots = new SlotTable();
    slots.install(def, rec("a", 40, 2), 3);
    expect(slots.restart(def, rec("a", 30, 4), 3, 50)).toBeUndefined();
    const s = slots.slot(def, "a", 3);
    expect({ acq: s.acq, ver: s.version }).toEqual({ acq: 40, ver: 2 });
  });
});
