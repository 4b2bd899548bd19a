import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { eventRecorder, LOG_FILE, type TrainEvent } from '../../train/train-events.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The event recorder holds the log lines of events emitted before the run's output folder is
 * prepared (set-up warnings: the recomputation choice, the AdamW engine's fallback), tells the
 * listener at once, and writes them first, in order, once the folder is ready.
 */
describe('train events', () => {
  it('holds the log until --out is ready, then writes the held events first and the rest as they come', (t) => {
    const out = join(tempDir(t), 'run');
    const heard: TrainEvent[] = [];
    const emit = eventRecorder(out, (e) => heard.push(e));
    emit({ type: 'warning', message: 'before the folder exists' });
    assert.equal(heard.length, 1, 'the listener hears it at once');
    assert.equal(existsSync(out), false, 'nothing is written before the folder is prepared');
    mkdirSync(out);
    emit.ready();
    emit({ type: 'warning', message: 'after' });
    emit.ready();
    const lines = readFileSync(join(out, LOG_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainEvent);
    assert.deepEqual(lines.map((e) => (e as { message: string }).message), ['before the folder exists', 'after']);
    assert.deepEqual(lines, heard, 'the log line and the listener get the same object');
  });
});
