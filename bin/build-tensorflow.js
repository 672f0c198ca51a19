#!/usr/bin/env node
// `npm run build:tensorflow`: runs dist/cli/build-tensorflow-command.js (see launch.js).
import { runBin } from './launch.js';
await runBin('cli/build-tensorflow-command');
