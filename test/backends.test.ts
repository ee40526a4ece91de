/**
 * Backend discovery and selection: listBackends reports every backend with a reason when unavailable;
 * createBackend honours an explicit choice, HOGWILD_BACKEND and the auto order, and throws typed errors.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BackendUnavailableError, InvalidArgumentError, createBackend, listBackends } from '../ts/index.ts';

const S = suite('backends');

function withEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const old = process.env.HOGWILD_BACKEND;
  if (value === undefined) delete process.env.HOGWILD_BACKEND;
  else process.env.HOGWILD_BACKEND = value;
  return fn().finally(() => {
    if (old === undefined) delete process.env.HOGWILD_BACKEND;
    else process.env.HOGWILD_BACKEND = old;
  });
}

S('listBackends: cuda, native, wasm in auto order, each with a reason when unavailable', async () => {
  const list = await listBackends();
  assert.equal(
    list.map((b) => b.name),
    ['cuda', 'native', 'wasm'],
  );
  for (const b of list) {
    assert.type(b.details, 'object');
    if (!b.available) assert.ok(typeof b.reason === 'string' && b.reason.length > 10, `${b.name}: reason given`);
  }
  assert.ok(list.find((b) => b.name === 'wasm')!.available, 'the committed WASM module always loads');
});

S('auto picks the first available backend and records what it passed over', async () => {
  const list = await listBackends();
  const first = list.find((b) => b.available)!;
  const skipped: string[] = [];
  const be = await withEnv(undefined, () => createBackend({ onSkip: (n) => skipped.push(n) }));
  assert.is(be.name, first.name);
  const expectedSkips = list.slice(0, list.indexOf(first)).map((b) => b.name);
  assert.equal(skipped, expectedSkips);
  const passed = (be.details.passedOver ?? []) as { name: string; reason: string }[];
  assert.equal(
    passed.map((p) => p.name),
    expectedSkips,
  );
  be.dispose();
});

S('HOGWILD_BACKEND overrides auto; an explicit option overrides HOGWILD_BACKEND', async () => {
  const be = await withEnv('wasm', () => createBackend());
  assert.is(be.name, 'wasm');
  be.dispose();
  const list = await listBackends();
  const native = list.find((b) => b.name === 'native')!;
  if (native.available) {
    const be2 = await withEnv('wasm', () => createBackend({ backend: 'native' }));
    assert.is(be2.name, 'native');
    be2.dispose();
  }
  await withEnv('gpu', async () => {
    try {
      await createBackend();
      assert.unreachable('an unknown HOGWILD_BACKEND must throw');
    } catch (e) {
      assert.instance(e, InvalidArgumentError);
      assert.match((e as Error).message, /HOGWILD_BACKEND/);
    }
  });
});

S('an unavailable backend throws BackendUnavailableError naming the cause', async () => {
  const list = await listBackends();
  const missing = list.filter((b) => !b.available);
  if (missing.length === 0) {
    console.log('\nSKIP backends-unavailable: every backend is available on this machine');
    return;
  }
  for (const m of missing) {
    try {
      await createBackend({ backend: m.name });
      assert.unreachable(`${m.name} should be unavailable`);
    } catch (e) {
      assert.instance(e, BackendUnavailableError);
      assert.is((e as BackendUnavailableError).backend, m.name);
      assert.ok((e as Error).message.includes(m.reason!), 'message carries the reason');
    }
  }
  try {
    await createBackend({ backend: 'tpu' as never });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, InvalidArgumentError);
  }
});

S('a disposed backend refuses work with a typed error', async () => {
  const be = await createBackend({ backend: 'wasm' });
  be.dispose();
  assert.throws(() => be.packBits([1, 2, 3], 4), (e: unknown) => (e as { code?: string }).code === 'DISPOSED');
});

S.run();
