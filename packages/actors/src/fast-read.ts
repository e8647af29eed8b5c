// The reader of plain scalars of the reply batch fast path (batch-codec.ts readOkBatch): the
// values fast-pack.ts writes by hand, read as wire.ts `packr` reads them. Anything else is left
// to packr.
/** What readScalar returns for a value it does not read (the full decoder reads it). */
export const NOT_PLAIN: unique symbol = Symbol("not a plain scalar");
/** Where the value readScalar last read ends. */
let scalarEnd = 0;
export const lastScalarEnd = (): number => scalarEnd;

/**
 * The plain scalar at `at` of `d` (nil, a boolean, an integer of at most 32 bits, a float64, an
 * ASCII string, undefined), decoded as packr decodes it, or NOT_PLAIN for anything else or a
 * value that runs past `d`'s end (lastScalarEnd() then says where the value ended).
 */
export function readScalar(d: Uint8Array, dv: DataView, at: number): unknown {
  const end = d.length;
  if (at >= end) return NOT_PLAIN;
  const b = d[at]!;
  if (b < 0x80) {
    scalarEnd = at + 1;
    return b;
  }
  if (b >= 0xe0) {
    scalarEnd = at + 1;
    return b - 0x100;
  }
  if (b >= 0xa0 && b < 0xc0) return readAscii(d, at + 1, b & 0x1f);
  let w: number; // bytes after the type byte
  let v: unknown;
  switch (b) {
    case 0xc0:
      scalarEnd = at + 1;
      return null;
    case 0xc2:
    case 0xc3:
      scalarEnd = at + 1;
      return b === 0xc3;
    case 0xcc:
    case 0xd0:
      w = 1;
      break;
    case 0xcd:
    case 0xd1:
      w = 2;
      break;
    case 0xce:
    case 0xd2:
      w = 4;
      break;
    case 0xcb:
      w = 8;
      break;
    case 0xd4:
      if (at + 3 > end || d[at + 1] !== 0 || d[at + 2] !== 0) return NOT_PLAIN;
      scalarEnd = at + 3;
      return undefined;
    case 0xd9:
      return at + 2 > end ? NOT_PLAIN : readAscii(d, at + 2, d[at + 1]!);
    case 0xda:
      return at + 3 > end ? NOT_PLAIN : readAscii(d, at + 3, dv.getUint16(at + 1));
    case 0xdb:
      return at + 5 > end ? NOT_PLAIN : readAscii(d, at + 5, dv.getUint32(at + 1));
    default:
      return NOT_PLAIN;
  }
  if (at + 1 + w > end) return NOT_PLAIN;
  if (b === 0xcc) v = d[at + 1];
  else if (b === 0xd0) v = dv.getInt8(at + 1);
  else if (b === 0xcd) v = dv.getUint16(at + 1);
  else if (b === 0xd1) v = dv.getInt16(at + 1);
  else if (b === 0xce) v = dv.getUint32(at + 1);
  else if (b === 0xd2) v = dv.getInt32(at + 1);
  else v = dv.getFloat64(at + 1);
  scalarEnd = at + 1 + w;
  return v;
}

function readAscii(d: Uint8Array, at: number, len: number): unknown {
  const end = at + len;
  if (end > d.length) return NOT_PLAIN;
  let s = "";
  if (len < 32) {
    for (let i = at; i < end; i++) {
      const c = d[i]!;
      if (c >= 0x80) return NOT_PLAIN;
      s += String.fromCharCode(c);
    }
  } else {
    for (let i = at; i < end; i++) if (d[i]! >= 0x80) return NOT_PLAIN;
    s = Buffer.from(d.buffer, d.byteOffset + at, len).toString("latin1");
  }
  scalarEnd = end;
  return s;
}
