#!/usr/bin/env node
// `muse-data`: runs dist/cli/muse-data.js (see launch.js).
import { runBin } from './launch.js';
await runBin('cli/muse-data');
