// The classes the example's node process hosts (ShardingProcess loads a module's `entities`).
import { Account } from "../src/account.js";

export const entities = [Account];
