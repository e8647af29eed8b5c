// @keyhold/core: hash, HRW partition ring, lease membership over NATS heartbeats, ownership events.
export type { AdminExtension, AdminOptions, AdminResponder, AdminStats } from "./admin.js";
export { parseAdminOptions } from "./admin.js";
export type { AdminMalformed, AdminReply, AdminRequest, EntitiesReport, NodeReport } from "./admin-wire.js";
export {
  ADMIN_RECENT_HANDOFFS,
  ADMIN_WIRE_VERSION,
  adminSubjects,
  DRAIN_NOT_ALLOWED,
  decodeAdminReply,
  decodeAdminRequest,
  encodeAdmin,
  isAdminMalformed,
} from "./admin-wire.js";
export { type Clock, systemClock } from "./clock.js";
export { connectNats } from "./connection.js";
export { DEADLINE_TICK_MS, type Deadline, Deadlines } from "./deadlines.js";
export type { ConfigDifference } from "./errors.js";
export {
  ClosedError,
  ConfigMismatchError,
  CoreErrorCode,
  InvalidArgumentError,
  InvalidOptionError,
  JetStreamUnavailableError,
  KeyholdError,
  StartTimeoutError,
  show,
} from "./errors.js";
export type {
  AcquiredEvent,
  FencedEvent,
  MembersEvent,
  ReleasedEvent,
  ShardEvent,
  UnfencedEvent,
} from "./events.js";
export { EventHub } from "./events.js";
export type { Key } from "./hash.js";
export { HASH_VERSION, hashKey, murmur3Bytes, murmur3String } from "./hash.js";
export type { HeartbeatStream } from "./heartbeat-stream.js";
export { hasJetStream, heartbeatStreamName, NatsHeartbeatStream } from "./heartbeat-stream.js";
export {
  type AskOptions,
  advertisesJetStream,
  askUntilReady,
  isJetStreamAnswer,
  isPermissionError,
  JETSTREAM_READY_MS,
  JETSTREAM_RETRY_MS,
  type JetStreamReadyOptions,
  jetStreamApiError,
} from "./jetstream-ready.js";
export { JOIN_STEPS, nextFront, stepSize } from "./join-steps.js";
export type { LeaseVerdict } from "./lease.js";
export { LeaseTable } from "./lease.js";
export type { Logger } from "./logger.js";
export { consoleLogger, silentLogger } from "./logger.js";
export type { LeaseStats, MembershipStats } from "./membership.js";
export type { ClusterConfig, LeaseMode, LeasesOption, ShardNodeOptions } from "./options.js";
export {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_JOIN_STEP_PARTITIONS,
  DEFAULT_LEASES,
  DEFAULT_RING_SIZE,
  DEFAULT_SKEW_MS,
  DEFAULT_START_TIMEOUT_MS,
  DEFAULT_TTL_MS,
  effectBudgetMs,
  leaseMs,
  MAX_CLOCK_DRIFT,
  MAX_RING_SIZE,
  MIN_EFFECT_BUDGET_MS,
  parseClusterConfig,
  parseLeases,
  parseOptions as parseShardNodeOptions,
} from "./options.js";
export type { AdmissionCaps } from "./placement.js";
export {
  admitted,
  cappedOrder,
  compareCandidates,
  ownerOf,
  ownerOfPartition,
  ownersOf,
  ownersOfPartition,
  ownersOfPartitionCapped,
  partitionOf,
  scoreOf,
} from "./placement.js";
export { Ring } from "./ring.js";
export { ShardNode } from "./shard-node.js";
export type {
  InboundMessage,
  MessageHeaders,
  RequestFailure,
  Transport,
  TransportStatus,
  TransportSubscription,
} from "./transport.js";
export { NatsTransport, RequestFailedError } from "./transport.js";
export { ID_PATTERN, intOption, isId, isNat, isObj } from "./validate.js";
export type {
  HeartbeatMessage,
  LeaveMessage,
  MembershipMessage,
  SyncReplyMessage,
  SyncRequestMessage,
} from "./wire.js";
export {
  decode as decodeMembershipMessage,
  memberHeartbeatSubject,
  subjects as membershipSubjects,
  WIRE_VERSION,
} from "./wire.js";
