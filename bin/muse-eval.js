#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step).
import { register } from 'tsx/esm/api';
register();
const { cli } = await import('../src/cli/eval-command.ts');
await cli();
