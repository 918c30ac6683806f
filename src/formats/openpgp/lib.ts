/**
 * openpgp.js, loaded on first use: it is the biggest module cerberus has (about 16 MB once
 * loaded), and a run of a Cryptomator job never needs it.
 */
let loading: Promise<typeof import('openpgp')> | undefined;

export const openpgpLib = (): Promise<typeof import('openpgp')> => (loading ??= import('openpgp'));
