// profile.ts
import { Entity } from "@keyhold/actors";

interface ProfileState {
  tags: string[]; // not Set<string>
  scores: Record<string, number>; // not Map<string, number>
  address: { city: string; zip: string } | null; // a plain object, not an Address class
  createdAt: Date | null; // Date is fine
  avatar: Uint8Array | null; // bytes are fine
}

export class Profile extends Entity<ProfileState> {
  static readonly type = "profile";

  initialState(): ProfileState {
    return { tags: [], scores: {}, address: null, createdAt: null, avatar: null };
  }

  tag(tag: string): string[] {
    if (!this.state.tags.includes(tag)) this.state.tags.push(tag);
    return [...this.state.tags];
  }
}
