// The narrow logger Keyhold writes to. Pass `console`, pino or your own.

export interface Logger {
  debug(msg: string, ...args: unknown[]): void;
  info(msg: string, ...args: unknown[]): void;
  warn(msg: string, ...args: unknown[]): void;
  error(msg: string, ...args: unknown[]): void;
}

const noop = () => {};

/** Warnings and errors to the console; info and debug dropped. The default. */
export const consoleLogger: Logger = {
  debug: noop,
  info: noop,
  warn: (msg, ...args) => console.warn(`[keyhold] ${msg}`, ...args),
  error: (msg, ...args) => console.error(`[keyhold] ${msg}`, ...args),
};

/** Drops everything. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** Warns once per key (a peer id), for at most `max` keys. */
export class OnceWarner {
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #max: number;
  readonly #seen = new Set<string>();

  constructor(logger: Logger, prefix: string, max = 1000) {
    this.#logger = logger;
    this.#prefix = prefix;
    this.#max = max;
  }

  warn(key: string, message: string): void {
    if (this.#seen.has(key) || this.#seen.size >= this.#max) return;
    this.#seen.add(key);
    this.#logger.warn(`${this.#prefix}${message}`);
  }
}
