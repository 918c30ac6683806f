-- The contract between an application and `cerberus worker`, for SQLite (see
-- sql/object-storage-contract.sql, the PostgreSQL version, for what each column means).
-- AUTOINCREMENT: an Id is never used twice, so the worker, which reads rows above the last Id
-- it saw, never misses one. Times are UTC text (ISO 8601, or SQLite's CURRENT_TIMESTAMP form)
-- or Unix seconds. The worker opens the file read-only.
--
--   sqlite3 app.db < sql/object-storage-contract.sqlite.sql

CREATE TABLE IF NOT EXISTS "ObjectStorageFiles" (
  "Id"                INTEGER PRIMARY KEY AUTOINCREMENT,
  "Name"              TEXT    NOT NULL,
  "Path"              TEXT    NOT NULL,
  "Storage"           TEXT    NOT NULL,
  "Version"           INTEGER NOT NULL CHECK ("Version" >= 1),
  "Hash"              TEXT    NOT NULL CHECK (length("Hash") = 64),
  "SignedDownloadUrl" TEXT,
  "CreatedAt"         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE ("Storage", "Path", "Version")
);

CREATE TABLE IF NOT EXISTS "ObjectStorageDeleteLog" (
  "Id"        INTEGER PRIMARY KEY AUTOINCREMENT,
  "FileId"    INTEGER NOT NULL REFERENCES "ObjectStorageFiles" ("Id"),
  "DeletedAt" TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS "ObjectStorageDeleteLog_FileId" ON "ObjectStorageDeleteLog" ("FileId");
