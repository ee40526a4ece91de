/**
 * `hogwild generate` (one completion, streamed) and `hogwild chat` (interactive, with the chat template).
 */
import readline from 'node:readline/promises';
import type { ChatMessage, GenerateOptions } from '../model/model.js';
import { intOption, interruptSignal, loadWithProgress, numOption, type ModelCliOptions } from './common.js';

export interface GenerateCliOptions extends ModelCliOptions {
  maxTokens?: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  minP?: string;
  seed?: string;
  stop?: string[];
}

function sampling(o: GenerateCliOptions): GenerateOptions {
  return {
    maxTokens: intOption('max-tokens', o.maxTokens, 0) ?? 256,
    temperature: numOption('temperature', o.temperature) ?? 0,
    topK: intOption('top-k', o.topK, 0),
    topP: numOption('top-p', o.topP),
    minP: numOption('min-p', o.minP),
    seed: intOption('seed', o.seed, 0),
    stop: o.stop,
  };
}

export async function generateCommand(prompt: string, o: GenerateCliOptions): Promise<void> {
  const ac = interruptSignal();
  const model = await loadWithProgress(o, ac.signal);
  try {
    const gen = model.generate(prompt, { ...sampling(o), signal: ac.signal });
    if (!o.json) {
      process.stdout.write(prompt);
      for await (const c of gen) process.stdout.write(c.text);
      process.stdout.write('\n');
    }
    const r = await gen.result;
    if (o.json) {
      process.stdout.write(
        `${JSON.stringify({ prompt, text: r.text, tokens: r.tokens, promptTokens: r.promptTokens, stopReason: r.stopReason, timings: r.timings, backend: model.backend.name }, null, 2)}\n`,
      );
    } else {
      const t = r.timings;
      process.stderr.write(
        `[${model.backend.name}] prompt ${r.promptTokens} tok, ${t.prefillTokensPerSecond.toFixed(1)} tok/s; generated ${r.tokens.length} tok, ${t.decodeTokensPerSecond.toFixed(1)} tok/s (${r.stopReason})\n`,
      );
    }
  } finally {
    model.dispose();
  }
}

export async function chatCommand(o: GenerateCliOptions & { system?: string }): Promise<void> {
  const model = await loadWithProgress(o);
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  const messages: ChatMessage[] = o.system ? [{ role: 'system', content: o.system }] : [];
  process.stderr.write(`chatting with ${o.model} on ${model.backend.name}; empty line or Ctrl-D to quit, Ctrl-C stops a reply\n`);
  try {
    for (;;) {
      let line: string;
      try {
        line = await rl.question('> ');
      } catch {
        break;
      }
      if (line.trim() === '') break;
      messages.push({ role: 'user', content: line });
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      let reply = '';
      try {
        const gen = model.chat(messages, { ...sampling(o), signal: ac.signal });
        for await (const c of gen) {
          reply += c.text;
          process.stdout.write(c.text);
        }
      } catch (e) {
        if (!ac.signal.aborted) throw e;
        process.stdout.write(' [stopped]');
      } finally {
        process.off('SIGINT', onSig);
      }
      process.stdout.write('\n');
      messages.push({ role: 'assistant', content: reply });
    }
  } finally {
    rl.close();
    model.dispose();
  }
}
