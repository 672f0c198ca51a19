#!/usr/bin/env node
// `muse-sample`: runs dist/cli/sample-command.js (see launch.js).
import { runBin } from './launch.js';
await runBin('cli/sample-command');
