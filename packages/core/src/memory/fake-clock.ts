import type { Clock } from '../ports/clock.port.js';

/** A clock that only moves when told to. */
export class FakeClock implements Clock {
  constructor(private current = 1_764_201_600_000) {}
  now(): number {
    return this.current;
  }
  set(ms: number): void {
    this.current = ms;
  }
  advance(ms: number): void {
    this.current += ms;
  }
}
