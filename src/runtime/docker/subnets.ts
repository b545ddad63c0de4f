/**
 * Session subnets, cut from EDGEECHO_SUBNET_POOL. Docker's default address pools run out after ~31 bridge
 * networks, so each session network gets an explicit subnet from here. The engine stays the authority: a subnet
 * another process took meanwhile shows up as "Pool overlaps" on create, is marked used and the next one is tried.
 */
import { EdgeechoError } from '../../../protocol/errors.js';

function parseIPv4(text: string): number {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new EdgeechoError('BAD_REQUEST', `expected an IPv4 address like 10.213.0.0, got "${text}"`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(cidr: string): { base: number; prefix: number } {
  const [addr, bits] = cidr.split('/');
  const prefix = Number(bits);
  if (!addr || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new EdgeechoError('BAD_REQUEST', `expected an IPv4 CIDR like 10.213.0.0/16, got "${cidr}"`);
  }
  const mask = prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
  return { base: (parseIPv4(addr) & mask) >>> 0, prefix };
}

export class SubnetPool {
  readonly size: number;
  private readonly base: number;
  private readonly step: number;
  private readonly used = new Set<number>();
  private cursor = 0;

  constructor(
    readonly pool: string,
    readonly prefix: number,
  ) {
    const parsed = parseCidr(pool);
    if (prefix < parsed.prefix || prefix > 30) {
      throw new EdgeechoError(
        'BAD_REQUEST',
        `subnet prefix /${prefix} must lie between the pool's /${parsed.prefix} and /30 (EDGEECHO_SUBNET_PREFIX, EDGEECHO_SUBNET_POOL=${pool})`,
      );
    }
    this.base = parsed.base;
    this.step = 2 ** (32 - prefix);
    this.size = 2 ** (prefix - parsed.prefix);
  }

  get free(): number {
    return this.size - this.used.size;
  }

  /** The index of a subnet of this pool's size inside the pool, or -1 (other pools, other sizes). */
  private indexOf(cidr: string): number {
    let parsed: { base: number; prefix: number };
    try {
      parsed = parseCidr(cidr);
    } catch {
      return -1;
    }
    if (parsed.prefix !== this.prefix) return -1;
    const offset = parsed.base - this.base;
    if (offset < 0 || offset % this.step !== 0 || offset / this.step >= this.size) return -1;
    return offset / this.step;
  }

  /** Takes the next free subnet, round-robin so a just-freed subnet is not reused at once. */
  allocate(): string {
    for (let tried = 0; tried < this.size; tried++) {
      const index = (this.cursor + tried) % this.size;
      if (!this.used.has(index)) {
        this.used.add(index);
        this.cursor = (index + 1) % this.size;
        return `${formatIPv4((this.base + index * this.step) >>> 0)}/${this.prefix}`;
      }
    }
    throw new EdgeechoError(
      'RESOURCE_EXHAUSTED',
      `no free /${this.prefix} subnet left in ${this.pool}: all ${this.size} are in use (EDGEECHO_SUBNET_POOL, EDGEECHO_SUBNET_PREFIX)`,
      { pool: this.pool, prefix: this.prefix, size: this.size },
    );
  }

  /** Marks a subnet taken (by an existing network); subnets outside the pool are ignored. */
  markUsed(cidr: string): void {
    const index = this.indexOf(cidr);
    if (index >= 0) this.used.add(index);
  }

  release(cidr: string): void {
    const index = this.indexOf(cidr);
    if (index >= 0) this.used.delete(index);
  }

  isUsed(cidr: string): boolean {
    return this.used.has(this.indexOf(cidr));
  }
}
