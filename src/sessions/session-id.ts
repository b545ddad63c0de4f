/** Session ids: short, random, lowercase base32, so they are valid in Docker names and easy to type. */
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
export const SESSION_ID_LENGTH = 10;
export const SESSION_ID_PATTERN = /^[a-z2-7]{10}$/;

/** 10 characters of 5 bits: 50 bits, collisions negligible for any node's lifetime of sessions. */
export function newSessionId(): string {
  const bytes = randomBytes(SESSION_ID_LENGTH);
  let id = '';
  for (const b of bytes) id += ALPHABET[b & 31];
  return id;
}
