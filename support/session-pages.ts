/**
 * Every session a daemon holds, newest first, read page by page with session.list's `before` cursor (a page is at
 * most 500 views). Bounded: stops after `maxPages` and says so rather than looping on a daemon that keeps paging.
 */
import type { Client } from '../src/client/index.js';

const PAGE = 500;
const DEFAULT_MAX_PAGES = 1000;

export async function listAllSessions<T extends { id: string }>(client: Client, maxPages = DEFAULT_MAX_PAGES): Promise<T[]> {
  const all: T[] = [];
  let before: string | null = null;
  for (let page = 0; page < maxPages; page++) {
    const answer: { sessions: T[]; next?: string | null } = await client.request('session.list', { limit: PAGE, ...(before ? { before } : {}) });
    all.push(...answer.sessions);
    before = answer.next ?? null;
    if (before === null) return all;
  }
  throw new Error(`session.list still had a next page after ${maxPages} pages of ${PAGE}; expected fewer than ${maxPages * PAGE} sessions`);
}
