/** 7-Zip archives for the yearly export: made, tested, listed and read by 7-Zip itself. */
export { createArchive, findSevenZip, listArchive, readEntry, testArchive, type ArchiveEntry, type CreateOptions, type SevenZip } from './sevenzip.js';
