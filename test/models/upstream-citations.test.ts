import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

/**
 * Every builder of models/bridgetower/ names the upstream code it mirrors, pinned so that the
 * link keeps pointing at the same lines: microsoft/BridgeTower at one full commit, or transformers
 * at a release tag. Whether the cited line holds what the builder says cannot be checked offline;
 * the form of every citation can.
 */

const BRIDGETOWER_COMMIT = '90f4bac0da3c217fe5e18a80e0ae3147c9ef05da';
/** Upstream's module files at that commit (`git ls-tree 90f4bac src/modules`, the ones this model mirrors). */
const UPSTREAM_FILES = ['bert_model.py', 'bt_module.py', 'clip_model.py', 'heads.py', 'objectives.py'];
const BRIDGETOWER_CITATION = new RegExp(`^// https://github\\.com/microsoft/BridgeTower/blob/${BRIDGETOWER_COMMIT}/src/modules/(${UPSTREAM_FILES.join('|').replace(/\./g, '\\.')})#L[1-9]\\d*$`);
const TRANSFORMERS_CITATION = /^\/\/ https:\/\/github\.com\/huggingface\/transformers\/blob\/v\d+\.\d+\.\d+\/src\/transformers\/[\w/]+\.py(#L[1-9]\d*)?$/;

/** Files of models/bridgetower/ that are not model parts, so have no upstream counterpart. */
const NOT_MODEL_PARTS: Record<string, string> = {
  'graphs.ts': "the bundle's graph table (which graphs a bundle ships and their inputs and outputs)",
  'export-graphs.ts': 'writes the graph table into a bundle',
};

const MODEL_DIR = fileURLToPath(new URL('../../models/bridgetower/', import.meta.url));

interface Builder {
  name: string;
  line: number;
  citations: string[];
}

/** Exported functions with the `// https://…` lines of the comment block right above each. */
function exportedBuilders(source: string): Builder[] {
  const lines = source.split('\n');
  const builders: Builder[] = [];
  lines.forEach((text, index) => {
    const match = /^export (?:async )?function (\w+)/.exec(text);
    if (!match) return;
    const citations: string[] = [];
    for (let i = index - 1; i >= 0 && /^\s*(\/\/|\/\*\*|\*)/.test(lines[i]!); i--) {
      if (lines[i]!.startsWith('// http')) citations.push(lines[i]!);
    }
    builders.push({ name: match[1]!, line: index + 1, citations });
  });
  return builders;
}

/** What is wrong with a file's citations, one line each (none when every builder is cited in form). */
function citationProblems(file: string, source: string): string[] {
  const problems: string[] = [];
  for (const builder of exportedBuilders(source)) {
    if (builder.citations.length === 0) problems.push(`${file}:${builder.line} ${builder.name} has no citation line right above it`);
    for (const citation of builder.citations) {
      if (!BRIDGETOWER_CITATION.test(citation) && !TRANSFORMERS_CITATION.test(citation)) problems.push(`${file}:${builder.line} ${builder.name}: '${citation}' is not a pinned citation`);
    }
  }
  for (const [link] of source.matchAll(/github\.com\/microsoft\/BridgeTower\/blob\/[^/\s]+/g)) {
    if (!link.endsWith(`/${BRIDGETOWER_COMMIT}`)) problems.push(`${file}: '${link}' is not at commit ${BRIDGETOWER_COMMIT}`);
  }
  return problems;
}

const modelFiles = readdirSync(MODEL_DIR).filter((f) => f.endsWith('.ts') && !(f in NOT_MODEL_PARTS)).sort();

describe('upstream citations in models/bridgetower', () => {
  it('the model parts are the files that mirror upstream modules', () => {
    assert.deepEqual(modelFiles, ['bert-model.ts', 'bt-module.ts', 'clip-model.ts', 'heads.ts', 'roberta.ts']);
    for (const file of Object.keys(NOT_MODEL_PARTS)) assert.ok(readdirSync(MODEL_DIR).includes(file), `${file} is exempted but does not exist`);
  });

  for (const file of modelFiles) {
    it(`every builder exported by ${file} cites upstream at the pinned commit`, () => {
      const source = readFileSync(`${MODEL_DIR}${file}`, 'utf8');
      assert.ok(exportedBuilders(source).length > 0, `${file} exports no builder`);
      assert.deepEqual(citationProblems(file, source), []);
    });
  }

  it('a builder without a citation, or cited at a short or other commit, is reported', () => {
    const url = (commit: string) => `// https://github.com/microsoft/BridgeTower/blob/${commit}/src/modules/heads.py#L16`;
    const source = [
      '/** Uncited. */',
      'export function uncited() {}',
      '',
      url('90f4bac'),
      'export function shortSha() {}',
      '',
      url('0'.repeat(40)),
      'export function otherCommit() {}',
      '',
      '// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/swin_model.py#L1',
      'export function unknownFile() {}',
      '',
      '// https://github.com/huggingface/transformers/blob/main/src/transformers/models/roberta/modeling_roberta.py#L70',
      'export function unpinnedTransformers() {}',
    ].join('\n');
    const reported = citationProblems('example.ts', source).map((p) => /^example\.ts(?::\d+ (\w+))?/.exec(p)![1] ?? 'link');
    assert.deepEqual(reported, ['uncited', 'shortSha', 'otherCommit', 'unknownFile', 'unpinnedTransformers', 'link', 'link']);
  });

  it('a builder cited at the pinned commit or at a transformers release is accepted', () => {
    const source = [
      `// https://github.com/microsoft/BridgeTower/blob/${BRIDGETOWER_COMMIT}/src/modules/bert_model.py#L463`,
      '/** Cited, with its doc comment after the link. */',
      'export function crossLayer() {}',
      '',
      '// https://github.com/huggingface/transformers/blob/v4.17.0/src/transformers/models/roberta/modeling_roberta.py#L70',
      'export function embeddings() {}',
    ].join('\n');
    assert.deepEqual(citationProblems('example.ts', source), []);
  });
});
