// The handle a test holds on one node of a TestCluster: its id, its Sharding and its state.
import type { Sharding } from "@keyhold/actors";
import type { Transport } from "@keyhold/core";
import type { Gate } from "./gate.js";

export type TestNodeState = "running" | "paused" | "crashed" | "left";

/** One node of a TestCluster. */
export class TestNode {
  readonly id: string;
  /** The node's Sharding: `stats()`, `handoffs()`, `node.ownedPartitions()`, `ref()`… */
  readonly sharding: Sharding;
  /** @internal */
  readonly gate: Gate;
  /** @internal */
  readonly transport: Transport;

  /** @internal */
  constructor(id: string, sharding: Sharding, gate: Gate, transport: Transport) {
    this.id = id;
    this.sharding = sharding;
    this.gate = gate;
    this.transport = transport;
  }

  get state(): TestNodeState {
    return this.gate.state;
  }
}
