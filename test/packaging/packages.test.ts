// The published form of the packages: build (turbo) and `npm pack` them, install the tarballs
// into a fresh project outside the workspace (no @keyhold/source condition, no tsx), type-check
// a consumer with tsc, and run the README example exactly as the README says to run it.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NatsServer } from "@keyhold/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const PACKAGES = ["core", "actors", "testing"] as const;

interface Run {
  readonly code: number | null;
  /** stdout and stderr, interleaved. */
  readonly out: string;
  readonly stdout: string;
  readonly ms: number;
}

/**
 * An environment as a user's shell would have it: none of the outer npm run's npm_* variables,
 * no NODE_OPTIONS (no source condition, no loader), this Node first on PATH. npm reads the
 * shared cache and skips the registry for what it has (prefer-offline) and prints no audit or
 * funding lines.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k === "NODE_OPTIONS" || k === "INIT_CWD" || k === "NATS_URL") continue;
    env[k] = v;
  }
  env.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`;
  env.npm_config_prefer_offline = "true";
  env.npm_config_audit = "false";
  env.npm_config_fund = "false";
  env.npm_config_update_notifier = "false";
  env.TURBO_TELEMETRY_DISABLED = "1";
  return { ...env, ...extra };
}

function sh(command: string, cwd: string, extra: Record<string, string> = {}): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", command], {
      cwd,
      env: userEnv(extra),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, stdout, ms: Date.now() - started });
    });
  });
}

async function ok(command: string, cwd: string, extra: Record<string, string> = {}): Promise<Run> {
  const r = await sh(command, cwd, extra);
  if (r.code !== 0) throw new Error(`\`${command}\` in ${cwd} exited ${r.code}:\n${r.out}`);
  return r;
}

/** The README's Example section: its install line, main.ts and run command. */
function readmeExample(readme: string): { devInstall: string; main: string; run: string } {
  const section = readme.slice(readme.indexOf("## Example"), readme.indexOf("## Documentation"));
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1],
    body: m[2] ?? "",
  }));
  const shLines = blocks.filter((b) => b.lang === "sh").flatMap((b) => b.body.trim().split("\n"));
  const devInstall = shLines.find((l) => l.startsWith("npm install --save-dev"));
  const run = shLines.find((l) => l.startsWith("npx tsc"));
  const main = blocks.find((b) => b.lang === "ts")?.body;
  if (!devInstall || !run || !main)
    throw new Error("README's Example section lost its install line, main.ts or run line");
  return { devInstall, main, run };
}

interface PackedFile {
  readonly path: string;
  readonly size: number;
}
interface Packed {
  readonly name: string;
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly PackedFile[];
}

const CONSUMER = `// Uses the installed packages as a user's code would, under strict tsc.
import { Entity, type EntityRef, HandlerError, memoryStore } from "@keyhold/actors";
import { InvalidOptionError, ownerOf, type ShardEvent } from "@keyhold/core";
import { TestCluster, type TestClusterOptions } from "@keyhold/testing";

class Cart extends Entity<{ items: string[] }> {
  static readonly type = "cart";
  static readonly replicas = 2;
  initialState() {
    return { items: [] as string[] };
  }
  add(item: string) {
    this.state.items.push(item);
    return this.state.items.length;
  }
}

export async function typed(ref: EntityRef<Cart>): Promise<number> {
  // @ts-expect-error add takes a string
  void ref.add(1);
  return ref.add("apple");
}

export function onEvent(e: ShardEvent): string {
  return e.type;
}

export const placed: string | undefined = ownerOf("k", ["a", "b"], 64);
export const errors = [HandlerError, InvalidOptionError];

// @ts-expect-error internals are not exported
export const internal = () => import("@keyhold/core/dist/ring.js");

const options: TestClusterOptions = { nodes: 3, entities: [Cart], node: { store: memoryStore() } };
const cluster = await TestCluster.start(options);
try {
  const key = "cart-1";
  await cluster.ref(Cart, key).add("pear");
  const owner = cluster.ownerOf(key) as string;
  await cluster.crash(owner);
  await cluster.converge();
  const n: number = await cluster.ref(Cart, key).add("fig");
  console.log(\`cart has \${n} items after \${owner} crashed\`);
} finally {
  await cluster.close();
}
`;

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    module: "nodenext",
    target: "es2022",
    types: ["node"],
    skipLibCheck: false,
    noEmitOnError: true,
    outDir: "out",
  },
  files: ["consumer.ts"],
};

describe("packages as a user installs them", () => {
  let work: string;
  let project: string;
  const packed: Packed[] = [];
  let installOut = "";
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "keyhold-pack-"));
    project = join(work, "shop");
    timings.build = (await ok("npm run build", root)).ms;
    // One npm process packs all three (each npm start costs seconds on a loaded machine).
    const workspaces = PACKAGES.map((p) => `-w @keyhold/${p}`).join(" ");
    const r = await ok(`npm pack --json --pack-destination ${work} ${workspaces}`, root);
    timings.pack = r.ms;
    packed.push(...(JSON.parse(r.stdout) as Packed[]));
    await ok(`mkdir shop && cd shop && npm init -y && npm pkg set type=module`, work);
    const tarballs = packed.map((p) => join(work, p.filename)).join(" ");
    const dev = readmeExample(await readFile(join(root, "README.md"), "utf8")).devInstall;
    const install = await ok(`npm install ${tarballs} && ${dev}`, project);
    timings.install = install.ms;
    installOut = install.out;
  }, 400_000);

  afterAll(async () => {
    console.log(`packaging timings (ms): ${JSON.stringify(timings)}`);
    for (const p of packed) {
      console.log(`${p.filename}: ${p.files.length} files, ${p.size} B packed, ${p.unpackedSize} B unpacked`);
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("each package packs its dist (ESM + .d.ts), src, README and package.json, and no tests", async () => {
    expect(packed.map((p) => p.name)).toEqual(["@keyhold/core", "@keyhold/actors", "@keyhold/testing"]);
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      for (const must of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "src/index.ts"]) {
        expect(paths, `${p.name} lacks ${must}`).toContain(must);
      }
      expect(
        paths.filter((f) => /(^|\/)test\/|\.test\./.test(f)),
        p.name,
      ).toEqual([]);
      expect(paths.filter((f) => f.startsWith("dist/") && f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual(
        [],
      );
    }
  });

  it("manifests: exports with types/import/default into dist, internals closed, real version ranges, engines", async () => {
    for (const p of PACKAGES) {
      const pkg = JSON.parse(
        await readFile(join(project, "node_modules/@keyhold", p, "package.json"), "utf8"),
      ) as {
        exports: Record<string, unknown>;
        engines: { node: string };
        dependencies: Record<string, string>;
        private?: boolean;
      };
      expect(pkg.private).toBeUndefined();
      expect(pkg.engines.node).toBe(">=20.19");
      expect(pkg.exports["."]).toEqual({
        "@keyhold/source": "./src/index.ts",
        types: "./dist/index.d.ts",
        import: "./dist/index.js",
        default: "./dist/index.js",
      });
      expect(pkg.exports["./internal/*"]).toBeNull();
      for (const [dep, range] of Object.entries(pkg.dependencies)) {
        expect(range, `${p} -> ${dep}`).not.toBe("*");
        if (dep.startsWith("@keyhold/")) expect(range).toBe("^0.1.0");
      }
    }
  });

  it("installs with no warnings but the two the README explains", () => {
    const warnings = installOut
      .split("\n")
      .filter((l) => /^npm (warn|WARN|error|ERR)/.test(l))
      .filter(
        (l) =>
          !/EBADENGINE( Unsupported engine \{|\s+(package: '@nats-io\/nuid@|required: \{ node: '>= 22|current: \{|\}))/.test(
            l,
          ),
      )
      .filter(
        (l) =>
          !/install-scripts(\s*$|\s+\d+ packages? ha(s|ve) install scripts|\s+msgpackr-extract@|\s+Run `npm install-scripts)/.test(
            l,
          ),
      );
    expect(warnings, installOut).toEqual([]);
  });

  it("tsc type-checks a consumer against the installed .d.ts, which runs TestCluster from dist", async () => {
    // Its own folder: the README's project has no tsconfig.json, and tsc 7 refuses to compile
    // files named on the command line next to one.
    const check = join(project, "check");
    await ok("mkdir -p check", project);
    await writeFile(join(check, "consumer.ts"), CONSUMER);
    await writeFile(join(check, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
    timings.tsc = (await ok("npx tsc -p tsconfig.json", check)).ms;
    const r = await ok("node out/consumer.js", check);
    timings.consumer = r.ms;
    expect(r.out).toMatch(/^cart has 2 items after node-\d crashed$/m);
  }, 300_000);

  it("deep imports into dist or internal are refused at run time", async () => {
    for (const spec of [
      "@keyhold/core/dist/ring.js",
      "@keyhold/actors/internal/router.js",
      "@keyhold/testing/src/index.ts",
    ]) {
      const r = await sh(`node --input-type=module -e 'await import("${spec}")'`, project);
      expect(r.code, spec).not.toBe(0);
      expect(r.out, spec).toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
    }
  }, 120_000);

  it("the README example runs with the README's command on this Node, against nats-server", async () => {
    timings.node = Number(process.versions.node.split(".")[0]); // CI runs Node 20
    const { main, run } = readmeExample(await readFile(join(root, "README.md"), "utf8"));
    await writeFile(join(project, "main.ts"), main);
    await using server = await NatsServer.start();
    const r = await sh(run, project, { NATS_URL: server.url });
    timings.readme = r.ms;
    expect(r.code, r.out).toBe(0);
    expect(r.out.trim()).toBe("5");
  }, 120_000);
});
