// What a Sharding node adds to its admin report (see @keyhold/core admin.ts): throughput and
// handling latency over the last seconds, mailbox depth, entities per type, hand-offs under way
// and recent, and its counters.
import { ADMIN_RECENT_HANDOFFS, type AdminExtension, type EntitiesReport, systemClock } from "@keyhold/core";
import type { HostParts } from "./host.js";
import { LatencyHistogram } from "./latency.js";
import type { Sharding } from "./sharding.js";

interface Sample {
  readonly at: number;
  readonly count: number;
  readonly counts: Float64Array;
}

/** Rates and quantiles are taken over this window (sampled once a second). */
const WINDOW_SAMPLES = 10;
const SAMPLE_MS = 1000;

/** The Sharding side of the admin protocol. */
export function actorsAdmin(sharding: Sharding, host: HostParts): AdminExtension {
  const latency = host.dispatcher.latency;
  // Sampling runs on the system clock: it paces a report, it decides nothing.
  const clock = systemClock;
  const ringSize = sharding.node.config.ringSize;
  const snap = (): Sample => ({ at: clock.now(), count: latency.count, counts: latency.counts.slice() });
  const samples: Sample[] = [snap()];
  let timer: unknown;
  const tick = () => {
    samples.push(snap());
    if (samples.length > WINDOW_SAMPLES + 1) samples.shift();
    timer = clock.setTimeout(tick, SAMPLE_MS);
  };
  timer = clock.setTimeout(tick, SAMPLE_MS);
  return {
    report(): EntitiesReport {
      const now = snap();
      const from = samples[0]!;
      const delta = now.counts.map((c, i) => c - (from.counts[i] ?? 0));
      const secs = Math.max(0.001, (now.at - from.at) / 1000);
      const census = host.slots.census();
      const moving: [number, "pending" | "releasing"][] = [];
      for (let p = 0; p < ringSize; p++) {
        const s = host.partitions.state(p);
        if (s === "pending" || s === "releasing") moving.push([p, s]);
      }
      const done = sharding.handoffs();
      return {
        asksPerSec: Math.round(((now.count - from.count) / secs) * 10) / 10,
        p50Ms: LatencyHistogram.quantile(delta, 0.5),
        p99Ms: LatencyHistogram.quantile(delta, 0.99),
        handled: latency.count,
        mailbox: census.queued,
        types: census.types,
        handoffs: moving,
        recent: done
          .slice(-ADMIN_RECENT_HANDOFFS)
          .map((h) => ({ p: h.partition, from: [...h.from], ms: h.ms, records: h.records, at: h.at })),
        stats: sharding.stats() as unknown as EntitiesReport["stats"],
      };
    },
    drain: () => sharding.close(),
    close() {
      clock.clearTimeout(timer);
    },
  };
}
