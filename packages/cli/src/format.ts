// Plain-text tables for a terminal, with colour only when the output is a terminal and
// NO_COLOR is unset (https://no-color.org).

export interface Style {
  readonly color: boolean;
}

const wrap = (code: string) => (s: Style, text: string) => (s.color ? `\x1b[${code}m${text}\x1b[0m` : text);
export const bold = wrap("1");
export const dim = wrap("2");
export const red = wrap("31");
export const green = wrap("32");
export const yellow = wrap("33");

// Width as printed: colour escapes take no room.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escapes is the point
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/** Columns padded to their widest cell; the header in bold. */
export function table(
  style: Style,
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visible(c))))
      .join("  ")
      .trimEnd();
  return [bold(style, line(headers)), ...rows.map(line)].join("\n");
}

export function ms(v: number | null): string {
  if (v === null) return "-";
  if (v >= 10_000) return `${(v / 1000).toFixed(0)}s`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}s`;
  if (v >= 10) return `${v.toFixed(0)}ms`;
  return `${v.toFixed(2)}ms`;
}

export function num(v: number | null): string {
  return v === null ? "-" : String(v);
}

export function duration(v: number | null): string {
  if (v === null) return "-";
  const s = Math.floor(v / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
