// Argument schemas: the Standard Schema interface (types only), how an entity class declares a
// schema per handler, and the check the owner runs before a handler (and a client may run early).
import { type ArgumentIssue, InvalidArgumentsError, InvalidEntityError } from "./errors.js";

/**
 * The Standard Schema interface, version 1 (the `@standard-schema/spec` package, 1.0.0; see
 * standardschema.dev). Zod (3.24+, 4), Valibot (1) and ArkType (2) implement it. Copied here as
 * types only, so Keyhold needs no runtime dependency, and users no extra install, for it.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": StandardSchemaProps<Input, Output>;
}

/** The `~standard` property of a Standard Schema (spec 1.0.0). */
export interface StandardSchemaProps<Input = unknown, Output = Input> {
  readonly version: 1;
  readonly vendor: string;
  readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
  readonly types?: { readonly input: Input; readonly output: Output } | undefined;
}

/** What a Standard Schema's `validate` returns: the (possibly transformed) value, or issues. */
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardIssue> };

/** One problem a Standard Schema found. */
export interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** The type a schema accepts. */
export type SchemaInput<S> = S extends StandardSchemaV1<infer I, unknown> ? I : never;
/** The type a schema produces (what the handler receives). */
export type SchemaOutput<S> = S extends StandardSchemaV1<unknown, infer O> ? O : never;

/**
 * The schema of one handler's arguments, in either of two forms:
 * - one schema for the whole argument list, which must produce an array (a tuple schema:
 *   `z.tuple([z.number()])`, `v.tuple([v.number()])`);
 * - an array with one schema per argument (`[z.number(), z.string().optional()]`); a missing
 *   argument is validated as `undefined`, and more arguments than schemas are refused.
 */
export type HandlerSchema<P extends readonly unknown[] = readonly unknown[]> =
  | StandardSchemaV1<unknown, P>
  | readonly StandardSchemaV1<unknown, P[number]>[];

/**
 * The arguments a handler receives under schema `S`: its output for the whole-list form, the
 * outputs in order for the per-argument form. Lets a handler's parameters follow from its schema:
 * `add(...[by]: SchemaArgs<typeof schemas.add>)`.
 */
export type SchemaArgs<S> =
  S extends StandardSchemaV1<unknown, infer O>
    ? O extends readonly unknown[]
      ? O
      : never
    : S extends readonly StandardSchemaV1[]
      ? PerArgument<S>
      : never;

/** Outputs in order; trailing arguments whose schema accepts `undefined` become optional. */
type PerArgument<S extends readonly unknown[]> = S extends readonly [...infer H, infer L]
  ? undefined extends SchemaOutput<L>
    ? [...PerArgument<H>, SchemaOutput<L>?]
    : [...AllOutputs<H>, SchemaOutput<L>]
  : AllOutputs<S>;
type AllOutputs<S extends readonly unknown[]> = { -readonly [I in keyof S]: SchemaOutput<S[I]> };

/** The checked schemas of one entity type, by handler. */
export type SchemaTable = ReadonlyMap<string, HandlerSchema>;

/** Most issues an InvalidArgumentsError carries (the wire copy is bounded). */
export const MAX_ISSUES = 20;

function isStandardSchema(s: unknown): s is StandardSchemaV1 {
  if ((typeof s !== "object" && typeof s !== "function") || s === null) return false;
  const props = (s as { "~standard"?: unknown })["~standard"];
  return (
    typeof props === "object" &&
    props !== null &&
    (props as { version?: unknown }).version === 1 &&
    typeof (props as { validate?: unknown }).validate === "function"
  );
}

/** Validates an entity class's `static schemas` against its handler names. */
export function parseSchemas(
  schemas: unknown,
  handlers: ReadonlySet<string>,
  where: string,
): SchemaTable | undefined {
  if (schemas === undefined) return undefined;
  if (typeof schemas !== "object" || schemas === null || Array.isArray(schemas)) {
    throw new InvalidEntityError(`${where}: \`static schemas\` must be an object of schemas by handler name`);
  }
  const table = new Map<string, HandlerSchema>();
  for (const [h, s] of Object.entries(schemas)) {
    if (!handlers.has(h)) {
      throw new InvalidEntityError(
        `${where}: \`static schemas\` names ${JSON.stringify(h)}, which is not a handler`,
      );
    }
    const ok = isStandardSchema(s) || (Array.isArray(s) && s.every(isStandardSchema));
    if (!ok) {
      throw new InvalidEntityError(
        `${where}: the schema of ${JSON.stringify(h)} must be a Standard Schema (zod, valibot, arktype, ...) or an array of them, one per argument`,
      );
    }
    table.set(h, s as HandlerSchema);
  }
  return table.size === 0 ? undefined : table;
}

type Checked = { readonly args: unknown[] } | { readonly issues: ArgumentIssue[] };

function isThenable<T>(x: unknown): x is Promise<T> {
  return typeof x === "object" && x !== null && typeof (x as { then?: unknown }).then === "function";
}

/** A Standard Schema issue as plain data that crosses the wire: a message and a path of keys. */
function plainIssue(issue: StandardIssue, prefix: readonly (string | number)[]): ArgumentIssue {
  const path = [...prefix];
  for (const seg of issue.path ?? []) {
    const key = typeof seg === "object" && seg !== null ? seg.key : seg;
    path.push(typeof key === "number" ? key : String(key));
  }
  return { message: String(issue.message).slice(0, 1000), path: path.slice(0, 32) };
}

function outcome(r: StandardResult<unknown>, prefix: readonly (string | number)[]): Checked {
  if (r.issues !== undefined)
    return { issues: r.issues.slice(0, MAX_ISSUES).map((i) => plainIssue(i, prefix)) };
  if (!Array.isArray(r.value)) {
    return {
      issues: [{ message: "The argument-list schema must produce an array (use a tuple schema)", path: [] }],
    };
  }
  return { args: r.value };
}

function check(schema: HandlerSchema, args: readonly unknown[]): Checked | Promise<Checked> {
  if (!Array.isArray(schema)) {
    const r = (schema as StandardSchemaV1)["~standard"].validate(args);
    return isThenable<StandardResult<unknown>>(r) ? r.then((x) => outcome(x, [])) : outcome(r, []);
  }
  const list = schema as readonly StandardSchemaV1[];
  if (args.length > list.length) {
    return {
      issues: [{ message: `Expected at most ${list.length} arguments, got ${args.length}`, path: [] }],
    };
  }
  const results = list.map((s, i) => s["~standard"].validate(args[i]));
  const combine = (rs: readonly StandardResult<unknown>[]): Checked => {
    const issues: ArgumentIssue[] = [];
    const out: unknown[] = [];
    rs.forEach((r, i) => {
      if (r.issues !== undefined) issues.push(...r.issues.map((x) => plainIssue(x, [i])));
      else out.push(r.value);
    });
    // Trailing undefined outputs stand for arguments not given (optional parameters).
    while (out.length > args.length && out[out.length - 1] === undefined) out.pop();
    return issues.length > 0 ? { issues: issues.slice(0, MAX_ISSUES) } : { args: out };
  };
  return results.some(isThenable)
    ? Promise.all(results).then(combine)
    : combine(results as StandardResult<unknown>[]);
}

function settle(type: string, h: string, c: Checked): unknown[] {
  if ("issues" in c) throw new InvalidArgumentsError(type, h, c.issues);
  return c.args;
}

/**
 * The arguments handler `h` runs with: unchanged when it has no schema, else the schema's
 * output. Throws (or, for an async schema, rejects with) InvalidArgumentsError carrying the issues.
 */
export function validArgs(
  type: string,
  schemas: SchemaTable | undefined,
  h: string,
  args: readonly unknown[],
): readonly unknown[] | Promise<unknown[]> {
  const schema = schemas?.get(h);
  if (schema === undefined) return args;
  const c = check(schema, args);
  return isThenable<Checked>(c) ? c.then((x) => settle(type, h, x)) : settle(type, h, c);
}

/**
 * The owner's trust boundary: calls `call` with the validated arguments of `h`, synchronously
 * when the schema is synchronous (or absent), else once the schema's promise resolves. Throws
 * or rejects with InvalidArgumentsError; the handler does not run then.
 */
export function callWithValidArgs(
  def: { readonly type: string; readonly schemas?: SchemaTable | undefined },
  h: string,
  args: readonly unknown[],
  call: (args: readonly unknown[]) => unknown,
): unknown {
  const v = validArgs(def.type, def.schemas, h, args);
  return isThenable<unknown[]>(v) ? v.then(call) : call(v);
}
