// The lean conditional write of a KV entry (kv-store.ts update): one JetStream publish to the
// key's subject with the expected last subject sequence as a header, as a plain request over a
// transport that answers every request on one wildcard reply subscription and sweeps deadlines
// in one timer (core's NatsTransport). nats.js's kv.update goes through js.publish and
// nc.request, which build headers, a timer, a deferred and an error object (with its stack) for
// every write: about as much CPU as the rest of the write (docs/concepts/performance.md). The
// server checks the same header either way, so a stale writer is refused just the same.
import type { MessageHeaders, Transport } from "@keyhold/core";

/** The header JetStream compares with the subject's last sequence before it stores a message. */
export const EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence";
/** JetStream's error code for a write whose expected last sequence is not the subject's. */
export const WRONG_LAST_SEQUENCE = 10071;

/** What a JetStream publish answered: the stored sequence, or the server's error. */
export type PutAck =
  | { readonly seq: number; readonly error?: undefined }
  | { readonly seq?: undefined; readonly error: { readonly code: number; readonly text: string } };

const text = new TextDecoder();

/**
 * Reads a JetStream publish acknowledgement (`{"stream":..,"seq":N}` or `{"error":{..}}`).
 * Anything else is an error with code 0.
 */
export function parsePutAck(data: Uint8Array): PutAck {
  let v: unknown;
  try {
    v = JSON.parse(text.decode(data));
  } catch {
    return { error: { code: 0, text: "the acknowledgement is not JSON" } };
  }
  if (typeof v !== "object" || v === null) return { error: { code: 0, text: "malformed acknowledgement" } };
  const o = v as { seq?: unknown; stream?: unknown; error?: { err_code?: unknown; description?: unknown } };
  if (o.error !== undefined && o.error !== null) {
    const code = typeof o.error.err_code === "number" ? o.error.err_code : 0;
    const description = typeof o.error.description === "string" ? o.error.description : "unknown error";
    return { error: { code, text: `${description} (${code})` } };
  }
  if (typeof o.stream !== "string" || o.stream === "" || typeof o.seq !== "number" || !(o.seq > 0))
    return { error: { code: 0, text: "malformed acknowledgement" } };
  return { seq: o.seq };
}

/** Writes `data` to `subject` if the subject's last sequence is still `expected`. */
export function leanPut(
  transport: Pick<Transport, "request">,
  subject: string,
  data: Uint8Array,
  expected: number,
  timeoutMs: number,
): Promise<PutAck> {
  const headers: MessageHeaders = { [EXPECTED_LAST_SUBJECT_SEQUENCE]: String(expected) };
  return transport.request(subject, data, { timeout: timeoutMs, headers }).then(parsePutAck);
}
