#!/usr/bin/env node
process.stderr.write('muse-sample: not available yet (tracked in issue 7)\n');
process.exitCode = 2;
