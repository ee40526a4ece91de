/**
 * Test definition helpers: every test gets its own seeded random stream, and a failure message carries the
 * run seed so it can be replayed with HOGWILD_TEST_SEED.
 */
import type { Test } from 'uvu';
import { replayHint, rngFor, type Rng } from './rng.ts';

export function seededTest(suite: Test, suiteName: string, name: string, fn: (rng: Rng) => void | Promise<void>): void {
  suite(name, async () => {
    const rng = rngFor(`${suiteName}/${name}`);
    try {
      await fn(rng);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (!err.message.includes('HOGWILD_TEST_SEED=')) err.message = `${err.message}\n    ${replayHint()}`;
      throw err;
    }
  });
}

/** Expect fn to throw an instance of cls; returns the error. */
export function expectThrows<E extends Error>(fn: () => unknown, cls: new (...a: never[]) => E, what: string, messagePattern?: RegExp): E {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (thrown === undefined) throw new Error(`${what}: expected ${cls.name}, but nothing was thrown`);
  if (!(thrown instanceof cls)) {
    const t = thrown as Error;
    throw new Error(`${what}: expected ${cls.name}, got ${t?.constructor?.name ?? typeof t}: ${t?.message ?? String(t)}`);
  }
  const msg = thrown.message ?? '';
  if (msg.trim().length < 8) throw new Error(`${what}: ${cls.name} thrown with an unhelpful message '${msg}'`);
  if (messagePattern && !messagePattern.test(msg)) {
    throw new Error(`${what}: ${cls.name} message '${msg}' does not mention ${messagePattern}`);
  }
  return thrown;
}
