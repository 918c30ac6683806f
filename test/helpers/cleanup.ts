import { afterAll } from 'vitest';
import { removeTempDirs } from './cli.js';

// a setup file (vitest.config.ts): after each test file, the folders its tests made go
afterAll(removeTempDirs);
