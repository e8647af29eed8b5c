// @keyhold/cli: the `keyhold` command (bin/keyhold.js) and its parts, for programs and tests.

export { helpText, type Io, run } from "./cli.js";
export { AdminClient, type ConnectOptions, natsOptions } from "./client.js";
export { type Dashboard, type DashboardOptions, startDashboard } from "./dashboard.js";
export {
  CliErrorCode,
  ConnectError,
  DrainRefusedError,
  HashVersionError,
  NoAnswerError,
  UsageError,
} from "./errors.js";
export type {
  DashboardSnapshot,
  EntitiesView,
  EntityTypeView,
  HandoffsView,
  HealthView,
  MembersView,
  MemberView,
  NodeStatsView,
  OwnersView,
  PartitionView,
  PlaceView,
  RingView,
} from "./view.js";
export {
  dashboardSnapshot,
  entitiesView,
  handoffsView,
  healthView,
  membersView,
  ownersView,
  placeView,
  ringView,
  statsView,
} from "./view.js";
