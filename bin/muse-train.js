#!/usr/bin/env node
process.stderr.write('muse-train: not available yet (tracked in issue 6)\n');
process.exitCode = 2;
