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

  it('compiles the native AdamW addon in the build stage and carries it into the runtime image', () => {
    const dockerfile = read('Dockerfile');
    const gyp = JSON.parse(read('binding.gyp').replace(/^\s*#.*$/gm, '')) as { targets: { target_name: string; sources: string[] }[] };
    const target = gyp.targets[0]!;
    // binding.gyp sits beside package.json when `npm ci` runs its install script; the C source comes with train/.
    assert.match(dockerfile, /^COPY package\.json [^\n]*binding\.gyp \.\/$/m);
    for (const source of target.sources) assert.ok(source.startsWith('train/'), `${source} is not under train/, which the build stage copies`);
    assert.match(dockerfile, new RegExp(`test -f build/Release/${target.target_name}\\.node`));
    assert.match(dockerfile, new RegExp(`^COPY --from=build /app/build/Release/${target.target_name}\\.node /app/build/Release/${target.target_name}\\.node$`, 'm'));
    // And npm pack ships what the install script compiles.
    const files = (JSON.parse(read('package.json')) as { files: string[] }).files;
    for (const needed of ['binding.gyp', ...target.sources]) assert.ok(files.includes(needed), `package.json files lacks ${needed}`);
  });
});
