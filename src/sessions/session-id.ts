/** Session and instance ids: short, random, lowercase base32, so they are valid in Docker names and labels and easy to type. */
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
export const SESSION_ID_LENGTH = 10;
export const SESSION_ID_PATTERN = /^[a-z2-7]{10}$/;
export const INSTANCE_ID_LENGTH = 12;
export const INSTANCE_ID_PATTERN = /^[a-z2-7]{12}$/;

function randomBase32(length: number): string {
  const bytes = randomBytes(length);
  let id = '';
  for (const b of bytes) id += ALPHABET[b & 31];
  return id;
}

/** 10 characters of 5 bits: 50 bits, collisions negligible for any node's lifetime of sessions. */
export function newSessionId(): string {
  return randomBase32(SESSION_ID_LENGTH);
}

/** 60 bits: two daemons on one engine never draw the same. */
export function newInstanceId(): string {
  return randomBase32(INSTANCE_ID_LENGTH);
}
