// session.ts
import { Entity } from "@keyhold/actors";

interface SessionState {
  user: string | null;
  lastSeen: number; // ms since the epoch
  activations: number;
}

export class Session extends Entity<SessionState> {
  static readonly type = "session";
  #timer: NodeJS.Timeout | undefined; // lives with the instance, never handed off

  initialState(): SessionState {
    return { user: null, lastSeen: 0, activations: 0 };
  }

  override onActivate(): void {
    // this.key and this.state are set; no message has run yet.
    this.state.activations++;
    this.#timer = setInterval(() => this.#check(), 60_000);
  }

  override onPassivate(): void {
    // Last chance before the instance is dropped: release what it holds.
    clearInterval(this.#timer);
  }

  login(user: string): void {
    this.state.user = user;
    this.state.lastSeen = Date.now();
  }

  whoami(): string | null {
    return this.state.user;
  }

  #check(): void {
    // Runs outside the mailbox: read only, never change this.state here.
    if (Date.now() - this.state.lastSeen > 3_600_000) console.log(`${this.key} is stale`);
  }
}
