#!/usr/bin/env node
import v8 from 'node:v8';

// Favour memory over speed in V8's heap heuristics (smaller young generation, slower heap
// growth). Backup and restore stream gigabytes through openpgp.js's web streams, which make
// much short-lived garbage; with V8's defaults a 2 GiB backup peaked near 195 MB RSS and its
// restore near 250 MB, with this flag near 150 and 130 MB (bench/memory.sh). The price is
// more frequent garbage collection: a third to a half more CPU time for a backup. Set before the
// rest of the CLI is loaded, hence the dynamic import.
v8.setFlagsFromString('--optimize-for-size');
// The pinned AWS SDK still supports Node 20 but warns on every run that later releases will
// not; that is for whoever upgrades the SDK (see package.json), not for a backup log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = await import('../cli/main.js');

const code = await main(process.argv.slice(2));
// exit once stdout has drained, so piped output is never cut short
process.stdout.write('', () => process.exit(code));
