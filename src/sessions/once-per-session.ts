/**
 * At most one run of a piece of work per session at a time: a second ask while one runs joins it (the reaper, the
 * sweep, a stop and reconcile may all find the same session done; the first decides).
 */
export class OncePerSession<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** Runs `work` for the session unless a run is under way, whose promise is returned instead. */
  run(id: string, work: () => Promise<T>): Promise<T> {
    let p = this.running.get(id);
    if (!p) {
      p = work().finally(() => this.running.delete(id));
      this.running.set(id, p);
    }
    return p;
  }

  has(id: string): boolean {
    return this.running.has(id);
  }

  get size(): number {
    return this.running.size;
  }

  /** The runs under way now. */
  pending(): Promise<T>[] {
    return [...this.running.values()];
  }
}
