#!/usr/bin/env node
// V8's --optimize-for-size is set per job, for OpenPGP jobs only: see loadJob in cli/context.ts.
// The pinned AWS SDK still supports Node 20 but warns on every run that later releases will
// not; that is for whoever upgrades the SDK (see package.json), not for a backup log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = await import('../cli/main.js');

const code = await main(process.argv.slice(2), { ownsProcess: true });
// exit once stdout has drained, so piped output is never cut short
process.stdout.write('', () => process.exit(code));
