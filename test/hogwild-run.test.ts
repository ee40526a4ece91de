/**
 * Hogwild! collaboration loop, with deterministic token-level scenarios on stories260K (a real tokenizer, no
 * chat template): every worker's tokens are scripted through the `pickToken` hook, so step ends, merges,
 * self-checks, answers, snapshots, the forced final answer, budget and abort happen at known forward passes.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AbortError, loadModel, type Model } from '../ts/index.ts';
import {
  DEFAULT_SELF_CHECK,
  delimitersBalanced,
  encodeFragment,
  endsStep,
  lastBoxed,
  type HogwildEvent,
  type HogwildOptions,
  type PickTokenContext,
} from '../ts/hogwild/index.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';

const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');

const S = suite('hogwild-run');

S('text rules: step ends, balanced delimiters, \\boxed{} extraction', () => {
  assert.ok(endsStep('We add the numbers.\n', '\n'), 'newline pair after a sentence');
  assert.ok(endsStep('Done!', '\n\n'), 'one token holding the break');
  assert.not.ok(endsStep('We add the numbers', '\n\n'), 'no finished sentence');
  assert.not.ok(endsStep('First.\n\nSecond', ' word'), 'no break in this token');
  assert.not.ok(endsStep('Code:\n```\nx = 1.', '\n\n'), 'inside a code fence');
  assert.ok(endsStep('Code:\n```\nx = 1\n```', '\n\n'), 'closed fence');
  assert.not.ok(endsStep('So $$x = 1.', '\n\n'), 'inside display math');
  assert.ok(endsStep('So $$x = 1$$', '\n\n'), 'closed display math');
  assert.not.ok(endsStep('', '\n\n'), 'empty step');
  assert.ok(delimitersBalanced('a \\[ x \\] b'));
  assert.not.ok(delimitersBalanced('a \\[ x'));
  assert.is(lastBoxed('so \\boxed{12} then \\boxed{\\frac{1}{2}}.'), '\\frac{1}{2}');
  assert.is(lastBoxed('open \\boxed{3'), null);
  assert.is(lastBoxed('\\boxed{5} and \\boxed{6'), '5');
  assert.is(lastBoxed('nothing'), null);
});

let modelP: Promise<Model | null> | undefined;
async function stories(): Promise<Model | null> {
  modelP ??= (async () => {
    if (!existsSync(STORIES)) {
      skipLine('hogwild-run stories260K', `${STORIES} not found`);
      return null;
    }
    const b = (await backendsUnderTest()).find((x) => x.name === 'native') ?? (await backendsUnderTest()).find((x) => x.name === 'wasm');
    if (!b) return null;
    return loadModel(STORIES, { backend: b.backend });
  })();
  return modelP;
}

/**
 * A scripted picker: worker w emits scripts[w] (texts, tokenized as fragments), then a filler token forever.
 * In the final-answer phase it emits finals(forwardPass) (e.g. '8}').
 */
function scripted(model: Model, scripts: (string | number)[][], finals?: (fp: number) => string) {
  const tok = model.tokenizer!;
  const filler = encodeFragment(tok, ' so')[0]!;
  const queues = scripts.map((parts) => parts.flatMap((p) => (typeof p === 'number' ? [p] : encodeFragment(tok, p))));
  let finalQueue: number[] = [];
  let finalFp = -1;
  const calls: PickTokenContext[] = [];
  const pick = (ctx: PickTokenContext): number => {
    calls.push({ ...ctx, logits: new Float32Array(0) });
    if (ctx.phase === 'final-answer') {
      if (ctx.forwardPass !== finalFp) {
        finalFp = ctx.forwardPass;
        finalQueue = finals ? encodeFragment(tok, finals(ctx.forwardPass)) : [];
      }
      return finalQueue.shift() ?? ctx.sample();
    }
    return queues[ctx.worker]!.shift() ?? filler;
  };
  return { pick, calls, filler, fillerText: tok.decode([filler], { stripLeadingSpace: false }) };
}

/** Same number of tokens for each text: pad the shorter ones in front with the filler token's text. */
function tokensOf(model: Model, text: string): number[] {
  return encodeFragment(model.tokenizer!, text);
}

const BASE: HogwildOptions = { workers: 2, openers: false, selfCheckEvery: 0 };

S('steps end at paragraph breaks; merged in worker order; the ending token opens the next step', async () => {
  const model = await stories();
  if (!model) return;
  const tok = model.tokenizer!;
  const a = ['Go.', '\n', '\n'];
  const b = ['Ok.', '\n', '\n'];
  const na = a.reduce((s, x) => s + tokensOf(model, x).length, 0);
  const nb = b.reduce((s, x) => s + tokensOf(model, x).length, 0);
  const filler = encodeFragment(tok, ' so')[0]!;
  const pad = (k: number) => Array.from({ length: k }, () => filler);
  const sa = [...pad(Math.max(0, nb - na)), ...a];
  const sb = [...pad(Math.max(0, na - nb)), ...b];
  const n = Math.max(na, nb); // both finish on this forward pass (their first step)
  const sc = scripted(model, [sa, sb]);
  const toks = (xs: (string | number)[]) => xs.flatMap((x) => (typeof x === 'number' ? [x] : tokensOf(model, x)));
  const run = model.hogwild({ ...BASE, pickToken: sc.pick });
  try {
    const solve = run.solve('Count to three.', { maxForwardPasses: n + 1 });
    const events: HogwildEvent[] = [];
    for await (const e of solve) events.push(e);
    const r = await solve.result;
    const fin = events.filter((e) => e.type === 'step-finished');
    assert.equal(
      fin.map((e) => [e.worker, e.forwardPass]),
      [
        [0, n],
        [1, n],
      ],
      'both finish on the same pass, in worker order',
    );
    assert.is(r.stopReason, 'budget');
    assert.is(r.forwardPasses, n + 1);
    assert.ok(r.history.startsWith('**Alice [1]:** '), r.history);
    assert.ok(r.history.includes('Go.\n\n**Bob [1]:** ') && r.history.endsWith('Ok.\n\n'), JSON.stringify(r.history));
    assert.equal(r.steps.map((s) => s.worker), [0, 1]);
    // cache: common = prompt + heading + Alice's step + Bob's step, each WITHOUT its last (ending) token
    const cache = run.cache!;
    assert.ok(cache.consistent());
    const common = cache.blockTokens(cache.common);
    const nl = tokensOf(model, '\n');
    const stepA = [...tokensOf(model, '**Alice [1]:** '), ...toks(sa)].slice(0, -1);
    const stepB = [...tokensOf(model, '**Bob [1]:** '), ...toks(sb)].slice(0, -1);
    assert.equal(common.slice(common.length - stepA.length - stepB.length), [...stepA, ...stepB], 'merged steps in the common block');
    // own blocks: the ending token first, then the next header (what pass n + 1 fed)
    assert.equal(cache.blockTokens(cache.own[0]!), [...nl, ...tokensOf(model, '**Alice [2]:** ')]);
    assert.equal(cache.blockTokens(cache.own[1]!), [...nl, ...tokensOf(model, '**Bob [2]:** ')]);
    assert.is(r.workers[0]!.generatedTokens, n + 1);
    assert.is(r.workers[0]!.fedTokens, cache.blockTokens(cache.own[0]!).length + stepA.length);
    assert.is(r.workers[1]!.steps.at(-1)!.text, `**Bob [2]:** ${sc.fillerText}`, 'the unfinished step: header + the token sampled last');
    assert.is(r.workers[1]!.steps.at(-1)!.forwardPass, -1);
  } finally {
    run.dispose();
  }
});

S('self-check: inserted at the next step start after K generated tokens, answered by the worker', async () => {
  const model = await stories();
  if (!model) return;
  // Alice ends her first step on pass a (2a >= K tokens generated in total) -> her step 2 starts with the
  // self-check; Bob ends his on pass a + 1 (2 tokens since the reset < K) -> none for him.
  const aText = ['A', ' so', ' so', '.', '\n', '\n'];
  const a = aText.reduce((s, x) => s + tokensOf(model, x).length, 0);
  const bText = [...aText.slice(0, 1), ' so', ...aText.slice(1)];
  const K = 2 * a - 1;
  const sc = scripted(model, [[...aText, ' no.', ' so'], bText]);
  const run = model.hogwild({ ...BASE, selfCheckEvery: K, pickToken: sc.pick });
  try {
    const solve = run.solve('Share the work.', { maxForwardPasses: a + 8 });
    const events: HogwildEvent[] = [];
    for await (const e of solve) events.push(e);
    const r = await solve.result;
    const checks = events.filter((e) => e.type === 'self-check');
    assert.is(checks.length, 2, JSON.stringify(checks));
    const [asked, answered] = checks;
    assert.ok(asked!.type === 'self-check' && asked!.phase === 'asked' && asked!.worker === 0 && asked!.step === 2 && asked!.forwardPass === a);
    assert.ok(answered!.type === 'self-check' && answered!.phase === 'answered' && answered!.answer === 'no.' && answered!.redundant === false, JSON.stringify(answered));
    assert.equal(r.selfChecks, [{ worker: 0, step: 2, forwardPass: a, answer: 'no.' }]);
    const cache = run.cache!;
    const own0 = cache.blockTokens(cache.own[0]!);
    const expectStart = [...tokensOf(model, '\n'), ...tokensOf(model, `**Alice [2]:** ${DEFAULT_SELF_CHECK}`)];
    assert.equal(own0.slice(0, expectStart.length), expectStart, 'ending token, header, self-check question');
    assert.ok(r.workers[0]!.transcript.includes(`**Alice [2]:** ${DEFAULT_SELF_CHECK} no.`), r.workers[0]!.transcript);
    assert.ok(!r.workers[1]!.transcript.includes(DEFAULT_SELF_CHECK), 'no self-check for Bob');
  } finally {
    run.dispose();
  }
});

S('an answer in \\boxed{} stops the run on that pass', async () => {
  const model = await stories();
  if (!model) return;
  const bob = [' so', ' so', ' the answer is \\boxed{7}', ' so'];
  const n = bob.slice(0, 3).reduce((s, x) => s + tokensOf(model, x).length, 0);
  const sc = scripted(model, [[], bob]);
  const run = model.hogwild({ ...BASE, pickToken: sc.pick });
  try {
    const solve = run.solve('What is 3 + 4?', { maxForwardPasses: 100, snapshots: [2, 50], snapshotAnswers: false });
    const events: HogwildEvent[] = [];
    for await (const e of solve) events.push(e);
    const r = await solve.result;
    assert.is(r.answer, '7');
    assert.is(r.answerSource, 'worker');
    assert.is(r.answerWorker, 1);
    assert.is(r.stopReason, 'answer');
    assert.is(r.forwardPasses, n);
    assert.is(r.forcedText, null);
    const ans = events.filter((e) => e.type === 'answer');
    assert.equal(ans, [{ type: 'answer', answer: '7', source: 'worker', worker: 1, forwardPass: n }]);
    assert.ok(!sc.calls.some((c) => c.phase === 'final-answer'), 'no forced answer needed');
    // snapshot 50 was not reached: it reports the end state
    assert.equal(
      r.snapshots.map((s) => [s.budget, s.reached, s.answer]),
      [
        [2, true, null],
        [50, false, '7'],
      ],
    );
  } finally {
    run.dispose();
  }
});

S('snapshots answer several budgets in one run; budget hit mid-step forces a final answer', async () => {
  const model = await stories();
  if (!model) return;
  const sc = scripted(model, [[], []], (fp) => `${fp}} so`);
  const run = model.hogwild({ ...BASE, pickToken: sc.pick });
  try {
    const solve = run.solve('Think of a number.', { maxForwardPasses: 8, snapshots: [6, 3, 100] });
    const events: HogwildEvent[] = [];
    for await (const e of solve) events.push(e);
    const r = await solve.result;
    assert.is(r.stopReason, 'budget');
    assert.is(r.forwardPasses, 8);
    assert.equal(
      r.snapshots.map((s) => [s.budget, s.reached, s.forwardPasses, s.answer, s.answerSource]),
      [
        [3, true, 3, '3', 'forced'],
        [6, true, 6, '6', 'forced'],
        [100, false, 8, '8', 'forced'],
      ],
    );
    assert.is(r.answer, '8');
    assert.is(r.answerSource, 'forced');
    assert.is(r.forcedText, '8}');
    assert.equal(events.filter((e) => e.type === 'snapshot').length, 3);
    // mid-step: each worker's last step is unfinished
    for (const w of r.workers) assert.is(w.steps.at(-1)!.forwardPass, -1);
    assert.equal(r.tokensPerWorker, [8, 8]);
    const s3 = r.snapshots[0]!;
    assert.is(s3.currentSteps[0], `**Alice [1]:** ${sc.fillerText.repeat(3)}`);
    assert.ok(run.cache!.consistent(), 'temporary answer blocks leave the cache as it was');
  } finally {
    run.dispose();
  }
});

S('end-of-sequence stops the run (or is suppressed), then the answer is forced', async () => {
  const model = await stories();
  if (!model) return;
  const eos = model.tokenizer!.eosId!;
  const sc = scripted(model, [[], []], () => '5}');
  const pick = (c: PickTokenContext) => (c.phase === 'step' && c.worker === 1 && c.forwardPass === 3 ? eos : sc.pick(c));
  const run = model.hogwild({ ...BASE, pickToken: pick });
  try {
    const r = await run.solve('Stop early.', { maxForwardPasses: 50 }).result;
    assert.is(r.stopReason, 'eos');
    assert.is(r.forwardPasses, 3);
    assert.is(r.answer, '5');
  } finally {
    run.dispose();
  }
  // suppressed: the sampler never picks EOS, even where it is the most likely token
  const pick2 = (c: PickTokenContext) => {
    if (c.phase === 'step') c.logits[eos] = 1e9;
    return c.sample();
  };
  const run2 = model.hogwild({ ...BASE, onEos: 'suppress', pickToken: pick2, finalAnswer: false });
  try {
    const r = await run2.solve('Go on.', { maxForwardPasses: 5 }).result;
    assert.is(r.stopReason, 'budget');
    assert.is(r.answer, null);
    assert.is(r.forwardPasses, 5);
  } finally {
    run2.dispose();
  }
});

S('abort mid-step: AbortError, cache consistent, run disposable, model reusable', async () => {
  const model = await stories();
  if (!model) return;
  const before = model.runtime.store.stats().blocksLive;
  const ref = await model.generate('Once upon a time', { maxTokens: 20 }).result;
  const ac = new AbortController();
  const run = model.hogwild({ workers: 3, sampling: { temperature: 0.7, seed: 3 } });
  const solve = run.solve('Tell a story together.', { maxForwardPasses: 1000, signal: ac.signal });
  let err: unknown = null;
  try {
    for await (const e of solve) {
      if (e.type === 'token' && e.forwardPass === 4) ac.abort();
    }
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof AbortError, `AbortError expected, got ${String(err)}`);
  await solve.result.then(
    () => assert.unreachable('result must reject'),
    (e: unknown) => assert.ok(e instanceof AbortError),
  );
  const cache = run.cache!;
  assert.ok(cache.consistent(), 'every block matches its token mirror');
  assert.ok(cache.forwardPasses >= 4 && cache.forwardPasses <= 8, `stopped promptly (${cache.forwardPasses})`);
  assert.is(model.runtime.store.stats().blocksLive, before + 1 + 3 + 2);
  run.dispose();
  run.dispose();
  assert.is(model.runtime.store.stats().blocksLive, before, 'dispose frees every block');
  const again = await model.generate('Once upon a time', { maxTokens: 20 }).result;
  assert.equal(again.tokens, ref.tokens, 'model reusable, same output');
});

S('a run starts right after an aborted generation whose forward is still in flight', async () => {
  const model = await stories();
  if (!model) return;
  const ac = new AbortController();
  const gen = model.generate('Once upon a time', { maxTokens: 200, signal: ac.signal });
  for await (const _ of gen) {
    ac.abort();
    break;
  }
  await gen.result.catch(() => undefined);
  const run = model.hogwild({ ...BASE, finalAnswer: false });
  try {
    const r = await run.solve('Go.', { maxForwardPasses: 4 }).result;
    assert.is(r.forwardPasses, 4);
    assert.ok(run.cache!.consistent());
  } finally {
    run.dispose();
  }
});

S('layouts end to end: contiguous keeps steps in the workspace, interleaved merges; f16 cache of its own', async () => {
  const model = await stories();
  if (!model) return;
  for (const layout of ['contiguous', 'interleaved', 'combined'] as const) {
    const sc = scripted(model, [['A.', '\n', '\n'], ['B.', '\n', '\n']]);
    const run = model.hogwild({ ...BASE, layout, pickToken: sc.pick, kvCache: layout === 'combined' ? { type: 'f16' } : undefined });
    try {
      const r = await run.solve('Split it.', { maxForwardPasses: 10 }).result;
      const cache = run.cache!;
      assert.ok(cache.consistent());
      assert.is(r.steps.length, 2, `${layout}: two finished steps`);
      const ownLen = cache.blockTokens(cache.own[0]!).length;
      if (layout === 'contiguous') {
        assert.is(ownLen, r.workers[0]!.fedTokens, 'contiguous: the workspace keeps everything');
        assert.is(cache.blockTokens(cache.common).length, r.promptTokens, 'contiguous: common = prompt only');
      } else {
        assert.ok(ownLen < r.workers[0]!.fedTokens, `${layout}: the finished step moved out`);
        assert.ok(cache.blockTokens(cache.common).length > r.promptTokens, `${layout}: into the common block`);
      }
      if (layout === 'combined') assert.is(cache.store.params.dtype, 'f16');
    } finally {
      run.dispose();
    }
  }
});

S('prompt formats: plain text without a chat template; chat template with a <think> prefix', async () => {
  const model = await stories();
  if (!model) return;
  const run = model.hogwild({ workers: 3 });
  const p = run.promptText('What is 2 + 2?');
  assert.not.ok(p.templated);
  assert.ok(p.text.includes('Alice, Bob and Carol') && p.text.includes('What is 2 + 2?'), p.text);
  run.dispose();
  const saved = model.chatTemplate;
  (model as { chatTemplate: string | null }).chatTemplate =
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}{# <think> #}";
  try {
    const r2 = model.hogwild({ workers: 2, names: ['Ann', 'Ben'], systemMessage: 'system' });
    const q = r2.promptText('Why?');
    assert.ok(q.templated);
    assert.ok(q.text.startsWith('<|system|>You are 2 instances') && q.text.includes('(Ann and Ben)'), q.text);
    assert.ok(q.text.endsWith('<|user|>Why?<|end|><|assistant|><think>\n'), q.text);
    r2.dispose();
  } finally {
    (model as { chatTemplate: string | null }).chatTemplate = saved;
  }
});

S.after(async () => {
  (await modelP)?.dispose();
});

S.run();
