// Property tests (fast-check) explore new random cases on every local run. In CI they replay one
// fixed seed, so a rare counterexample found by random search shows up on a developer's machine
// (and is then kept as an `examples` entry of its property) instead of failing one CI run in N.
// KH_PROPERTY_SEED picks the seed anywhere, e.g. to replay a run.
import fc from "fast-check";

const fixed = process.env.KH_PROPERTY_SEED ?? (process.env.CI ? "20261202" : undefined);
if (fixed !== undefined) fc.configureGlobal({ seed: Number(fixed) });
