-- The contract between an application and `cerberus worker` (README: "Off-site copy of an
-- application's uploads"), for PostgreSQL. The application INSERTs into both tables and never
-- UPDATEs or DELETEs a row: an update of a file is a new row with the next Version, a delete is
-- a row in the delete log. The worker only SELECTs (sql/object-storage-worker-role.sql).
--
--   psql "$APP_DB_URL" -v ON_ERROR_STOP=1 -f sql/object-storage-contract.sql

CREATE TABLE IF NOT EXISTS "ObjectStorageFiles" (
  "Id"                bigserial   PRIMARY KEY,
  -- the file's name as the application shows it (restore names a file after Path)
  "Name"              text        NOT NULL,
  -- the object's key in its bucket, e.g. /cars/id-1/thumbnail.png
  "Path"              text        NOT NULL,
  -- which storage holds it, e.g. s3: a key of worker.storages
  "Storage"           text        NOT NULL,
  -- 1 for the first upload, the next number for each update of the same Storage and Path
  "Version"           integer     NOT NULL CHECK ("Version" >= 1),
  -- sha-256 of the content, hex
  "Hash"              text        NOT NULL CHECK ("Hash" ~* '^[0-9a-f]{64}$'),
  -- may expire; NULL or expired: the worker reads the object from the storage itself
  "SignedDownloadUrl" text,
  "CreatedAt"         timestamptz NOT NULL DEFAULT now(),
  UNIQUE ("Storage", "Path", "Version")
);

CREATE TABLE IF NOT EXISTS "ObjectStorageDeleteLog" (
  "Id"        bigserial   PRIMARY KEY,
  -- the Id of a row of the deleted file (any of its versions)
  "FileId"    bigint      NOT NULL REFERENCES "ObjectStorageFiles" ("Id"),
  "DeletedAt" timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS "ObjectStorageDeleteLog_FileId" ON "ObjectStorageDeleteLog" ("FileId");
