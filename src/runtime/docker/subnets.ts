/**
 * Session subnets, cut from EDGEECHO_SUBNET_POOL. Docker's default address pools run out after ~31 bridge
 * networks, so each session network gets an explicit subnet from here. The engine stays the authority: other
 * daemons (other edgeecho instances with the same pool, anything else) create networks at any time, so the pool
 * avoids every subnet seen on the engine at the last look (`observe`, refreshed by the driver when Docker answers
 * "Pool overlaps"), of any size, plus those this process has handed out. It starts at a random place so that two
 * daemons sharing a pool rarely reach for the same subnet at once.
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

/** A CIDR as [first, last] addresses, or null when it is not IPv4. */
function rangeOf(cidr: string): [number, number] | null {
  try {
    const { base, prefix } = parseCidr(cidr);
    return [base, base + 2 ** (32 - prefix) - 1];
  } catch {
    return null;
  }
}

export class SubnetPool {
  readonly size: number;
  private readonly base: number;
  private readonly step: number;
  /** Indexes handed out by allocate() and not released. */
  private readonly own = new Set<number>();
  /** Subnets of networks on the engine at the last look, by CIDR. */
  private readonly observed = new Map<string, [number, number]>();
  private cursor: number;

  constructor(
    readonly pool: string,
    readonly prefix: number,
    options: { start?: number } = {},
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
    this.cursor = Math.abs(Math.trunc(options.start ?? 0)) % this.size;
  }

  /** Subnets neither handed out here nor overlapping a network seen on the engine. */
  get free(): number {
    let free = 0;
    for (let index = 0; index < this.size; index++) if (!this.taken(index)) free++;
    return free;
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

  private taken(index: number): boolean {
    if (this.own.has(index)) return true;
    const first = this.base + index * this.step;
    const last = first + this.step - 1;
    for (const [a, b] of this.observed.values()) if (a <= last && first <= b) return true;
    return false;
  }

  /** Takes the next free subnet, round-robin so a just-freed subnet is not reused at once. */
  allocate(): string {
    for (let tried = 0; tried < this.size; tried++) {
      const index = (this.cursor + tried) % this.size;
      if (!this.taken(index)) {
        this.own.add(index);
        this.cursor = (index + 1) % this.size;
        return `${formatIPv4((this.base + index * this.step) >>> 0)}/${this.prefix}`;
      }
    }
    throw new EdgeechoError(
      'RESOURCE_EXHAUSTED',
      `no free /${this.prefix} subnet left in ${this.pool}: all ${this.size} are in use or overlap networks on the engine (EDGEECHO_SUBNET_POOL, EDGEECHO_SUBNET_PREFIX)`,
      { pool: this.pool, prefix: this.prefix, size: this.size },
    );
  }

  /** Replaces what is known of the engine's networks with their subnets now (any size, any pool). */
  observe(subnets: Iterable<string>): void {
    this.observed.clear();
    for (const cidr of subnets) this.markUsed(cidr);
  }

  /** Marks a subnet taken by a network on the engine; every pool subnet it overlaps is skipped. */
  markUsed(cidr: string): void {
    const range = rangeOf(cidr);
    if (range) this.observed.set(cidr, range);
  }

  /** Frees a subnet whose network is gone (handed out here, or seen on the engine). */
  release(cidr: string): void {
    this.observed.delete(cidr);
    const index = this.indexOf(cidr);
    if (index >= 0) this.own.delete(index);
  }

  isUsed(cidr: string): boolean {
    const index = this.indexOf(cidr);
    return index >= 0 ? this.taken(index) : this.observed.has(cidr);
  }
}
