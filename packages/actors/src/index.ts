// @keyhold/actors: entities on top of @keyhold/core — one live instance per key, routed by key.

export type { AskOptions, EntityClass, EntityRef, HandlerName } from "./entity.js";
export { Entity, MAX_REPLICAS } from "./entity.js";
export type { WireError } from "./errors.js";
export {
  AbortedError,
  ActorError,
  ActorErrorCode,
  DeadlineExceededError,
  HandlerError,
  InvalidEntityError,
  InvalidRequestError,
  MailboxFullError,
  NoLiveMemberError,
  NotOwnerError,
  NotSerializableError,
  QuorumError,
  ShardingClosedError,
  StoreConflictError,
  StoreError,
  UnknownEntityTypeError,
  UnknownHandlerError,
} from "./errors.js";
export { type NatsKvStoreOptions, natsKvStore } from "./kv-store.js";
export type { AckInfo, ShardingOptions } from "./options.js";
export {
  DEFAULT_ASK_TIMEOUT_MS,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_CONCURRENCY,
  DEFAULT_DEDUPE_MAX_ENTRIES,
  DEFAULT_DEDUPE_WINDOW_MS,
  DEFAULT_HANDOFF_TIMEOUT_MS,
  DEFAULT_IDLE_MS,
  DEFAULT_MAILBOX_SIZE,
  DEFAULT_MAX_ACTIVE,
} from "./options.js";
export type { ReplicationStats, WriteQuorum } from "./replication.js";
export { majorityReplicas } from "./replication.js";
export type { HandoffInfo, ShardingStats } from "./sharding.js";
export { Sharding } from "./sharding.js";
export type { StateEntry, StateStore, StoredState, StoreFactory } from "./store.js";
export { MemoryStore, memoryStore } from "./store.js";
export { ACTOR_WIRE_VERSION, nodeSubject } from "./wire.js";
