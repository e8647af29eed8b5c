// @keyhold/actors: entities on top of @keyhold/core — one live instance per key, routed by key.

export type { BackgroundStats } from "./background.js";
export type { AskOptions, EntityClass, EntityRef, EntitySchemas, HandlerName } from "./entity.js";
export { Entity, MAX_REPLICAS } from "./entity.js";
export type { EpochMode, EpochSource, EpochStats } from "./epochs.js";
export { epochBucket, MemoryEpochs } from "./epochs.js";
export type { ArgumentIssue, WireError } from "./errors.js";
export {
  AbortedError,
  ActorError,
  ActorErrorCode,
  DeadlineExceededError,
  EpochError,
  HandlerError,
  InvalidArgumentsError,
  InvalidEntityError,
  InvalidReminderError,
  InvalidRequestError,
  MailboxFullError,
  NoLiveMemberError,
  NotOwnerError,
  NotSerializableError,
  QuorumError,
  ReadOnlyStateError,
  ShardingClosedError,
  StoreConflictError,
  StoreError,
  TelemetryUnavailableError,
  UnknownEntityTypeError,
  UnknownHandlerError,
} from "./errors.js";
export { type NatsKvStoreOptions, natsKvStore } from "./kv-store.js";
export type {
  AckInfo,
  MeterProviderLike,
  ShardingOptions,
  TelemetryOptions,
  TracerProviderLike,
} from "./options.js";
export {
  DEFAULT_ASK_TIMEOUT_MS,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_BACKGROUND_CONCURRENCY,
  DEFAULT_CONCURRENCY,
  DEFAULT_DEDUPE_MAX_ENTRIES,
  DEFAULT_DEDUPE_WINDOW_MS,
  DEFAULT_HANDOFF_TIMEOUT_MS,
  DEFAULT_IDLE_MS,
  DEFAULT_MAILBOX_SIZE,
  DEFAULT_MAX_ACTIVE,
} from "./options.js";
export type { ReminderSchedule, ReminderStats } from "./reminders.js";
export {
  MAX_REMINDER_EVERY_MS,
  MAX_REMINDER_NAME,
  MAX_REMINDERS_PER_ENTITY,
  MIN_REMINDER_EVERY_MS,
} from "./reminders.js";
export type { ReplicationStats, WriteQuorum } from "./replication.js";
export { majorityReplicas } from "./replication.js";
export type {
  HandlerSchema,
  SchemaArgs,
  SchemaInput,
  SchemaOutput,
  StandardIssue,
  StandardResult,
  StandardSchemaProps,
  StandardSchemaV1,
} from "./schema.js";
export type { HandoffInfo, ShardingStats } from "./sharding.js";
export { Sharding } from "./sharding.js";
export type { StateEntry, StateStore, StoredState, StoreFactory } from "./store.js";
export { MemoryStore, memoryStore } from "./store.js";
export { ACTOR_PROTOCOL, ACTOR_WIRE_VERSION, BATCH_VERSION, nodeSubject } from "./wire.js";
