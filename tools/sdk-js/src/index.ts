// @lelantos-ai/sdk: the TypeScript client of lelantosd's REST API.
export { Sandbox, Snapshot, Commands, Files } from './sandbox.js';
export type { SandboxCreateOpts, SandboxListOpts, CommandOpts, CommandResult, ReadFormat } from './sandbox.js';
export { Template } from './template.js';
export type { BuildFollowOpts } from './template.js';
export { ApiKeys, Team } from './team.js';
export { ConnectionConfig } from './client.js';
export type { ConnectionOpts } from './client.js';
export * from './errors.js';
/** The API's types, generated from the OpenAPI document (src/schema.ts). */
export type * as api from './schema.js';
