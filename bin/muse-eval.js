#!/usr/bin/env node
// `muse-eval`: runs dist/cli/eval-command.js (see launch.js).
import { runBin } from './launch.js';
await runBin('cli/eval-command');
