import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

describe('the Docker build', () => {
  it('copies every folder tsconfig.build.json compiles (a missing one fails `npm ci` inside the image)', () => {
    const { include } = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    const copied = new Set([...read('Dockerfile').matchAll(/^COPY (\w[\w-]*) \.\/\1$/gm)].map((m) => m[1]!));
    assert.deepEqual(include.filter((folder) => !copied.has(folder)), []);
  });
});
