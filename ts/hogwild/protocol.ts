/**
 * The collaboration protocol's wording and text rules: system prompt, worker names, step headers, openers,
 * the periodic self-check, the final-answer request, step-boundary detection and answer extraction.
 * Every string here is a default that HogwildOptions can replace (see docs/HOGWILD.md).
 *
 * Placeholders in templates: {name} {step} (step headers, openers), {workers} {names} {first} (system prompt).
 */
import type { Tokenizer } from '../tokenizer/types.js';

export const DEFAULT_NAMES: readonly string[] = ['Alice', 'Bob', 'Carol', 'Dave', 'Eve', 'Frank', 'Grace', 'Heidi'];

export const DEFAULT_SYSTEM_PROMPT = [
  'You are {workers} instances of the same assistant ({names}) and you work on the problem below at the same time.',
  'Each of you writes in your own stream, and everyone can read everything the others write, word by word, as it is written.',
  'Finished paragraphs of all of you are collected, in the order they were finished, in one shared record.',
  '',
  'Working rules:',
  '- Begin by agreeing on a plan: propose how to divide the problem and say which part you take.',
  '- Take parts nobody has taken yet, or try a different approach from the others; never redo a calculation someone else has done or is doing.',
  '- Look at what the others are writing before each new paragraph, and adapt: drop your part if someone got there first, build on their results, point out mistakes.',
  '- Keep each paragraph short and end it with a blank line, so the others can read it soon.',
  '- When you have a result, state it plainly so the others can use it.',
  '- When the group is sure of the final answer, write it once as \\boxed{answer}.',
  '- If you disagree and cannot settle it quickly, go with the choice of {first}.',
].join('\n');

/** Written at the start of every step of a worker (step numbers start at 1). */
export const DEFAULT_STEP_HEADER = '**{name} [{step}]:** ';

/** Written after the first step header of each worker: index 0 for the first worker, index 1 for the others. */
export const DEFAULT_OPENERS: readonly string[] = ["I'm {name}. A plan for splitting the work:", "I'm {name}, joining in."];

/** Inserted after a step header every `selfCheckEvery` generated tokens (all workers together). */
export const DEFAULT_SELF_CHECK = 'Self-check: is someone else already doing what I am doing right now? (yes/no): ';

/** Appended after everything written so far when no worker gave an answer. Ends where the answer starts. */
export const DEFAULT_FORCE_ANSWER = '\n\nTime is up. Taking into account everything written above, the final answer is \\boxed{';

/** Plain-text prompt format for models without a chat template. */
export const PLAIN_PROMPT_FORMAT = '{system}\n\n# Problem\n\n{problem}\n\n# Our work\n\n';

export function fillTemplate(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}

export function renderSystemPrompt(template: string, names: readonly string[]): string {
  const list = names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return fillTemplate(template, { workers: names.length, names: list, first: names[0] ?? '' });
}

/** Per-model generation prefix: reasoning models whose chat template knows a <think> tag start inside it. */
export function defaultGenerationPrefix(chatTemplate: string | null): string {
  return chatTemplate && chatTemplate.includes('<think>') ? '<think>\n' : '';
}

/**
 * Token ids of a text fragment that continues other text. SentencePiece vocabularies prefix a space at the
 * start of a text; for a fragment that would be a stray space, so it is tokenized after a newline instead and
 * the newline's tokens are dropped (when that reproduces the fragment exactly).
 */
export function encodeFragment(tok: Tokenizer, text: string): number[] {
  if (text === '') return [];
  const ids = tok.encode(text, { addSpecial: false, parseSpecial: true });
  const dec = (x: number[]) => tok.decode(x, { special: true, stripLeadingSpace: false });
  if (dec(ids) === text) return ids;
  const nl = tok.encode('\n', { addSpecial: false });
  const both = tok.encode(`\n${text}`, { addSpecial: false, parseSpecial: true });
  if (both.length > nl.length && nl.every((t, i) => both[i] === t)) {
    const rest = both.slice(nl.length);
    if (dec(rest) === text) return rest;
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------------------
// Step boundaries

const TERMINATORS = /[.!?。！？…‽؟।॥]['"”’)*_]*$|```$|~~~$|\$\$$|\\\]$/;

function count(text: string, s: string): number {
  let n = 0;
  for (let i = text.indexOf(s); i >= 0; i = text.indexOf(s, i + s.length)) n++;
  return n;
}

/** True when code fences and display-math delimiters are balanced in `text`. */
export function delimitersBalanced(text: string): boolean {
  return count(text, '```') % 2 === 0 && count(text, '~~~') % 2 === 0 && count(text, '$$') % 2 === 0 && count(text, '\\[') === count(text, '\\]');
}

/**
 * Does the piece just generated end the current step? `before` is the step's content so far (without its
 * header), `piece` the new token's text. A step ends at a paragraph break ("\n\n", formed by this token) that
 * follows a finished sentence (or a closed fence / display formula), with fences and math delimiters balanced.
 */
export function endsStep(before: string, piece: string): boolean {
  if (!piece.includes('\n')) return false;
  const text = before + piece;
  const at = text.lastIndexOf('\n\n');
  if (at < 0 || at + 2 <= before.length) return false; // the break must be completed by this piece
  const para = text.slice(0, at).trimEnd();
  if (para.trim() === '') return false;
  return TERMINATORS.test(para) && delimitersBalanced(para);
}

// ---------------------------------------------------------------------------------------------------------
// Answers

/** How a final answer is recognised in a worker's text, and how to ask for one when none came. */
export interface AnswerFormat {
  /** The answer contained in a step's text, or null. Called as text grows. */
  extract(text: string): string | null;
  /** Appended after everything written so far to make the model state its answer (see DEFAULT_FORCE_ANSWER). */
  forcePrompt: string;
  /** The answer in the text generated right after forcePrompt; `final` is true when generation stopped. */
  parseForced(continuation: string, final: boolean): string | null;
}

/** Contents of the last complete \boxed{...} in text (nested braces allowed), or null. */
export function lastBoxed(text: string): string | null {
  let from = text.length;
  for (;;) {
    const at = text.lastIndexOf('\\boxed{', from);
    if (at < 0) return null;
    const inner = balancedFrom(text, at + 7);
    if (inner !== null) return inner.trim();
    from = at - 1;
    if (from < 0) return null;
  }
}

/** Text from `start` up to the brace that closes an already open one, or null when it never closes. */
function balancedFrom(text: string, start: number): string | null {
  let depth = 1;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.slice(start, i);
  }
  return null;
}

/** Math answers in \boxed{...} (the default). */
export const BOXED_ANSWER: AnswerFormat = {
  extract: lastBoxed,
  forcePrompt: DEFAULT_FORCE_ANSWER,
  parseForced(cont, final) {
    const inner = balancedFrom(cont, 0);
    if (inner !== null) return inner.trim();
    if (!final) return null;
    const t = cont.split('\n')[0]!.trim();
    return t === '' ? null : t;
  },
};
