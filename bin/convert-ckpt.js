#!/usr/bin/env node
// `convert-ckpt …` is `bridgetower convert …`.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2), 'convert');
