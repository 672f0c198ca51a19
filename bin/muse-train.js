#!/usr/bin/env node
// `muse-train`: runs dist/cli/train-command.js (see launch.js).
import { runBin } from './launch.js';
await runBin('cli/train-command');
