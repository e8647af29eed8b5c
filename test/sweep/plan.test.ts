// The sweep runner's arguments, file choice, seeds and report reading (npm run sweep).
import { describe, expect, it } from "vitest";
import { fileVerdicts, parseSweepArgs, SweepArgError, seedList, selectFiles } from "./plan.js";

describe("npm run sweep: arguments", () => {
  it("reads patterns and options, with defaults", () => {
    expect(parseSweepArgs([])).toEqual({
      patterns: [],
      seeds: 20,
      fromSeed: undefined,
      all: false,
      logDir: undefined,
    });
    expect(
      parseSweepArgs(["handoff", "--seeds", "5", "--from-seed", "13", "--all", "--log-dir", "/tmp/x"]),
    ).toEqual({
      patterns: ["handoff"],
      seeds: 5,
      fromSeed: 13,
      all: true,
      logDir: "/tmp/x",
    });
  });

  it("names the option and the value it refuses", () => {
    const bad = (argv: string[]) => () => parseSweepArgs(argv);
    expect(bad(["--seeds", "0"])).toThrow(/--seeds .*got "0"/);
    expect(bad(["--seeds", "2.5"])).toThrow(/--seeds .*got "2.5"/);
    expect(bad(["--seeds"])).toThrow(/--seeds needs a value/);
    expect(bad(["--from-seed", "-1"])).toThrow(/--from-seed .*got "-1"/);
    expect(bad(["--log-dir", "--all"])).toThrow(/--log-dir needs a directory/);
    expect(bad(["--sedes", "3"])).toThrow(SweepArgError);
    expect(bad(["--sedes", "3"])).toThrow(/unknown option "--sedes"/);
  });
});

describe("npm run sweep: files and seeds", () => {
  const src: Record<string, string> = {
    "packages/a/test/x.property.test.ts": "fc.assert(fc.property(...))",
    "packages/a/test/y.test.ts": "await fc.assert(fc.asyncProperty(...))",
    "packages/a/test/z.test.ts": "expect(1).toBe(1)",
    "packages/a/test/w.property.integration.test.ts": "fc.assert(",
    "packages/b/test/v.property.test.ts": "no property here",
  };
  const files = Object.keys(src);
  const read = (f: string) => src[f]!;

  it("takes *.property.test.ts files with a property, or with --all every file with one, never integration files", () => {
    expect(selectFiles(files, read, { patterns: [], all: false })).toEqual([
      "packages/a/test/x.property.test.ts",
    ]);
    expect(selectFiles(files, read, { patterns: [], all: true })).toEqual([
      "packages/a/test/x.property.test.ts",
      "packages/a/test/y.test.ts",
    ]);
    expect(selectFiles(files, read, { patterns: ["/y.test"], all: true })).toEqual([
      "packages/a/test/y.test.ts",
    ]);
    expect(() => selectFiles(files, read, { patterns: ["/y.test"], all: false })).toThrow(/add --all/);
  });

  it("gives consecutive seeds from --from-seed, else distinct random ones in range", () => {
    expect(seedList(3, 5)).toEqual([5, 6, 7]);
    expect(seedList(2, 2 ** 31 - 1)).toEqual([2 ** 31 - 1, 1]);
    let x = 0;
    const seeds = seedList(4, undefined, () => [0.5, 0.5, 0, 0.999999999, 0.25][x++]!);
    expect(seeds).toHaveLength(4);
    expect(new Set(seeds).size).toBe(4);
    for (const s of seeds) expect(s >= 1 && s <= 2 ** 31 - 1).toBe(true);
  });
});

describe("npm run sweep: reading vitest's JSON report", () => {
  it("a failed test names the file; a file failing outside its tests is failed too", () => {
    const report = {
      testResults: [
        { name: "/r/a.test.ts", status: "passed", assertionResults: [{ status: "passed", fullName: "ok" }] },
        {
          name: "/r/b.test.ts",
          status: "failed",
          assertionResults: [
            { status: "passed", fullName: "fine" },
            { status: "failed", fullName: "loses a write" },
          ],
        },
        { name: "/r/c.test.ts", status: "failed", assertionResults: [] },
      ],
    };
    const v = fileVerdicts(report, "/r");
    expect(v.get("a.test.ts")).toEqual([]);
    expect(v.get("b.test.ts")).toEqual(["loses a write"]);
    expect(v.get("c.test.ts")).toEqual(["(the file failed outside its tests)"]);
    expect(() => fileVerdicts({}, "/r")).toThrow(/not a vitest JSON report/);
  });
});
