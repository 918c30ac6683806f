/**
 * openpgp.js, loaded on first use (later imports come from the module cache): it is the
 * biggest module cerberus has, about 10 MB once loaded, and a Cryptomator job never needs it.
 */
export const openpgpLib = (): Promise<typeof import('openpgp')> => import('openpgp');
