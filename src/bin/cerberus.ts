#!/usr/bin/env node
import { main } from '../cli/main.js';

const code = await main(process.argv.slice(2));
// exit once stdout has drained, so piped output is never cut short
process.stdout.write('', () => process.exit(code));
