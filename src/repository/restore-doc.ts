import type { CryptomatorDescriptor, Descriptor, OpenpgpDescriptor, PlainDescriptor } from './descriptor.js';

/** RESTORE.md: how to get everything back with standard tools alone. */
export function restoreDoc(d: Descriptor): string {
  return (d.kind === 'openpgp' ? openpgpDoc(d) : d.kind === 'cryptomator' ? cryptomatorDoc(d) : plainDoc(d)) + DATABASES + YEARLY;
}

/** Dumps are files of every kind of restore point; the section is there whether or not a job has any. */
const DATABASES = `
## Databases (databases/)

A job with \`source.databases\` stores each database as one file at the top of every restore
point: \`databases/<name>.dump\` (PostgreSQL, \`pg_dump --format=custom\`) or
\`databases/<name>.sql\` (MySQL or MariaDB, \`mysqldump --single-transaction\`). Get the
restore point back as above (in a plain stage the file is \`<level>/<id>/files/databases/…\`),
or with cerberus: \`cerberus restore … --path "databases/**"\`. Then load it into a new,
empty database:

    createdb -T template0 NAME
    pg_restore --dbname=NAME --no-owner --exit-on-error databases/NAME.dump
    # add --no-privileges when the dump's roles do not exist on this server;
    # pg_restore --list shows what is in it, pg_restore -f NAME.sql turns it into SQL

    mysql -e 'CREATE DATABASE NAME CHARACTER SET utf8mb4'
    mysql NAME < databases/NAME.sql
    # as the user that made its views, triggers and routines (each names it as DEFINER), or an
    # admin (sudo mysql). MySQL's mysql, and MariaDB's from before mid-2024 (10.11.8, 10.6.18),
    # stop at the first line of a newer MariaDB's dump (Unknown command '\\-'): give them
    # tail -n +2 databases/NAME.sql instead

Connection and password come as usual for these tools (\`PGHOST\`, \`PGUSER\`, \`~/.pgpass\`;
\`~/.my.cnf\`). Use a \`pg_restore\` at least as new as the \`pg_dump\` that wrote the file.
`;

/** The yearly cold copy is the same for both kinds: 7-Zip and its own password. */
const YEARLY = `
## The yearly cold copy (yearly/<year>/)

If \`cerberus export --upload\` runs here, \`yearly/<year>/\` holds that year's copy as the
volumes of one 7-Zip archive (\`<job>-<year>.7z.001\`, \`.002\`, …), AES-256 with encrypted
names, under the export password (not the key or the vault password above). Check the
volumes with \`sha256sum -c SHA256SUMS\`, then, with all of them in one folder:

    7zz x <job>-<year>.7z.001        # asks for the export password; 7z or the 7-Zip app work too

\`CERBERUS-MANIFEST.txt\` in it lists the sha256, size and path of every file.
`;

/** For OpenPGP repositories: GnuPG and GNU tar. */
function openpgpDoc(d: OpenpgpDescriptor): string {
  const keys = d.encryption.symmetric
    ? 'This repository is encrypted with a **passphrase** (OpenPGP symmetric encryption). `gpg -d` asks for it.'
    : [
        'This repository is encrypted to these OpenPGP keys (any one of them opens it):',
        '',
        ...d.encryption.recipients.map((r) => `- \`${r.fingerprint}\` ${r.userIds.join(', ')}`),
        '',
        'Import the private key first: `gpg --import cerberus.key.asc` (gpg asks for its passphrase when it decrypts).',
      ].join('\n');

  return `# Restoring this repository without cerberus

This folder is a **cerberus** backup repository for the job \`${d.job}\` (repository id \`${d.id}\`,
created ${d.createdAt}). cerberus makes restoring easy, but it is never required: every
restore point comes back with **GnuPG** (\`gpg\`) and **GNU tar** alone, as described below.

## Keys

${keys}

## What is here

- \`cerberus.json\`: what kind of repository this is (no secrets).
- \`quarterly/\`, \`monthly/\`, \`weekly/\`, \`daily/\`: one folder per **restore point** (a *generation*),
  named by its UTC time, e.g. \`daily/2026-11-22T030012Z/\`. Each holds:
  - \`data.tar.gpg.0001\`, \`data.tar.gpg.0002\`, …: one tar archive, encrypted as one OpenPGP
    message and cut into volumes. Join them with \`cat\` in name order.
  - \`manifest.json.gpg\`: the full list of files at this point (encrypted JSON).
  - \`info.json\`: plaintext facts, notably \`chainDirs\`: the generations this restore point is
    built from, oldest first.
  - \`SHA256SUMS\`: checksums of the other files. A folder without it is an unfinished
    backup: ignore it.
- \`locks/\`: present while cerberus runs.

A **quarterly** generation is full. A monthly, weekly or daily generation holds only what
changed since its parent (the newest generation of a higher level before it). So a restore
point is rebuilt by extracting its chain, oldest first: at most four archives.

## 1. Check the files (no key needed)

    cd daily/2026-11-22T030012Z && sha256sum -c SHA256SUMS

## 2. Find the chain

    grep -o '"chainDirs": *"[^"]*"' daily/2026-11-22T030012Z/info.json

prints for example \`"chainDirs": "quarterly/2026-10-01T030011Z monthly/2026-11-01T030009Z daily/2026-11-22T030012Z"\`.

## 3. Rebuild the restore point

Extract the first (full) generation, then for each later generation of the chain, oldest
first, **delete what it lists as deleted, then extract it**. Each archive carries
\`.cerberus/deleted.txt\` (the paths gone since its parent, separated by NUL bytes) and
\`.cerberus/manifest.tsv\` (every path at that point, with its size, mode, mtime and sha256).

    REPO=/path/to/this/repository
    POINT=daily/2026-11-22T030012Z          # the restore point you want
    DEST=/path/to/empty/folder
    mkdir -p "$DEST" && cd "$DEST"
    CHAIN=$(grep -o '"chainDirs": *"[^"]*"' "$REPO/$POINT/info.json" | cut -d'"' -f4)
    for g in $CHAIN; do
      cat "$REPO/$g"/data.tar.gpg.* | gpg -d | tar -xO .cerberus/deleted.txt | xargs -0 -r rm -rf --
      cat "$REPO/$g"/data.tar.gpg.* | gpg -d | tar -x
    done
    rm -rf .cerberus

By hand, that is, for a chain \`quarterly/A monthly/B daily/C\`:

    cat "$REPO"/quarterly/A/data.tar.gpg.* | gpg -d | tar -x
    cat "$REPO"/monthly/B/data.tar.gpg.* | gpg -d | tar -xO .cerberus/deleted.txt | xargs -0 -r rm -rf --
    cat "$REPO"/monthly/B/data.tar.gpg.* | gpg -d | tar -x
    cat "$REPO"/daily/C/data.tar.gpg.* | gpg -d | tar -xO .cerberus/deleted.txt | xargs -0 -r rm -rf --
    cat "$REPO"/daily/C/data.tar.gpg.* | gpg -d | tar -x
    rm -rf .cerberus

Notes:

- Run it in an empty folder. Deleting before extracting keeps folder times exact.
- As root, \`tar -x\` also restores owners; add \`--no-same-owner\` if you do not want that.
- If a folder of the backup is read-only, extracting a later generation into it needs
  write permission: run as root, or \`chmod -R u+w .\` between steps and fix modes after.
- \`gpg -d\` ends with "decryption failed" or a "MDC" error if a volume is damaged or
  missing: check step 1, and use another restore point or another copy of the repository.

## With cerberus

    cerberus list --config cerberus.yaml
    cerberus restore --config cerberus.yaml --at latest --to /path/to/folder
`;
}

/** For Cryptomator repositories: each restore point is a vault the Cryptomator app opens. */
function cryptomatorDoc(d: CryptomatorDescriptor): string {
  return `# Restoring this repository without cerberus

This folder is a **cerberus** backup repository for the job \`${d.job}\` (repository id \`${d.id}\`,
created ${d.createdAt}). Every restore point here is a complete **Cryptomator vault**
(vault format 8, cipher combo SIV_GCM). cerberus is never required to get files back:
the Cryptomator app (desktop, Android, iOS) opens each restore point as it is.

## Password

Every restore point opens with the same password: the vault password the job was set up
with (\`encryption.password\` in the cerberus config). Nobody can open a vault without it,
and it cannot be recovered from what is stored here.

## What is here

- \`cerberus.json\`: what kind of repository this is (no secrets).
- \`masterkey.cryptomator\`: the repository's key file, protected by the password. Every
  restore point holds a copy of it.
- \`quarterly/\`, \`monthly/\`, \`weekly/\`, \`daily/\`: one folder per **restore point**,
  named by its UTC time, e.g. \`daily/2026-11-22T030012Z/\`. Each is a whole vault:
  - \`vault.cryptomator\`, \`masterkey.cryptomator\`, \`d/\`: the vault itself;
  - \`manifest.json.c9r\`: cerberus's list of files with their times and permissions
    (encrypted like a file of the vault);
  - \`info.json\`: plaintext facts about the restore point;
  - \`SHA256SUMS\` and \`VAULT.SHA256SUMS\`: checksums of every file. A folder without
    \`SHA256SUMS\` is an unfinished backup: ignore it.
- \`mirror/\`: if present, the always-current vault that \`cerberus sync up\` keeps.
- \`locks/\`: present while cerberus runs.

Restore points do not depend on each other: each vault stands alone, and deleting one
never damages another.

## 1. Check the files (no password needed)

    cd daily/2026-11-22T030012Z && sha256sum -c SHA256SUMS && sha256sum --quiet -c VAULT.SHA256SUMS

## 2. Open a restore point in Cryptomator

- **Desktop:** "Add Vault" → "Existing Vault", choose \`vault.cryptomator\` inside the restore
  point's folder (from a synced or mounted copy of this storage), enter the password,
  then "Reveal Drive" and copy your files out.
- **Phone:** add the storage (pCloud, WebDAV, S3, …) in the app, then open the restore point's
  folder as an existing vault.

Open vaults here read-only (Cryptomator: vault options → "Read-only"): a change made in the
app would alter that restore point behind cerberus's back.

## With cerberus

    cerberus list --config cerberus.yaml
    cerberus restore --config cerberus.yaml --at latest --to /path/to/folder
`;
}

/** For a plain stage: the files are there as they were; cp is the restore tool. */
function plainDoc(d: PlainDescriptor): string {
  return `# Restoring from this cerberus repository by hand

Repository \`${d.id}\` of job \`${d.job}\`, a **plain stage**: nothing here is encrypted.
Every generation is a complete folder tree in \`<level>/<id>/files/\`. Files that did not
change since the generation before are hard links to the same data, so each generation
looks whole but costs only its changes. Deleting one never touches another.

## Restore

Pick a generation (the newest is the last \`daily/\`, \`weekly/\`, \`monthly/\` or
\`quarterly/\` folder by name; names are UTC times) and copy its tree:

    cp -a daily/2026-11-22T030012Z/files/. /restore/here/

\`rsync -aH daily/…/files/ /restore/here/\` works too. Do not edit files in place here:
a hard-linked file is the same file in every generation that holds it.

## Check

\`manifest.json\` in each generation lists every path with its size, mode, mtime and
sha256. \`SHA256SUMS\` (written last: a generation without it is unfinished) checks the
manifest: \`sha256sum -c SHA256SUMS\`.
`;
}
