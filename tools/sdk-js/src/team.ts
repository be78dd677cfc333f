// API keys and the team: the keys of the calling key's team, its record, its members.
import { ConnectionConfig, type ConnectionOpts } from './client.js';
import type * as api from './schema.js';

export class ApiKeys {
  /** A new key; `key` is in this answer only. */
  static async create(name: string, o: ConnectionOpts = {}): Promise<api.ApiKeyCreated> {
    return new ConnectionConfig(o).json<api.ApiKeyCreated>('POST', '/api-keys', { json: { name }, expect: 201 });
  }

  static async list(o: ConnectionOpts = {}): Promise<api.ApiKey[]> {
    return new ConnectionConfig(o).json<api.ApiKey[]>('GET', '/api-keys');
  }

  /** The key stops working at once. */
  static async revoke(id: string, o: ConnectionOpts = {}): Promise<void> {
    await new ConnectionConfig(o).raw('DELETE', `/api-keys/${encodeURIComponent(id)}`, { expect: 204 });
  }
}

export class Team {
  /** The team with its limits and usage. */
  static async get(o: ConnectionOpts = {}): Promise<api.Team> {
    return new ConnectionConfig(o).json<api.Team>('GET', '/teams');
  }

  static readonly members = {
    list: (o: ConnectionOpts = {}): Promise<api.Member[]> => new ConnectionConfig(o).json<api.Member[]>('GET', '/teams/members'),
    /** Invites `email`; ConflictError when already a member. */
    add: (email: string, role: 'member' | 'admin' = 'member', o: ConnectionOpts = {}): Promise<api.Member> =>
      new ConnectionConfig(o).json<api.Member>('POST', '/teams/members', { json: { email, role }, expect: 201 }),
    remove: async (memberId: string, o: ConnectionOpts = {}): Promise<void> => {
      await new ConnectionConfig(o).raw('DELETE', `/teams/members/${encodeURIComponent(memberId)}`, { expect: 204 });
    },
  };
}
