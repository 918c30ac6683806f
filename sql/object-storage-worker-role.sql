-- A login role for `cerberus worker` that may read the two tables of the contract and nothing
-- else: no other table, no write, no DDL. Run it with psql as the tables' owner (or a
-- superuser), connected to the application's database; the password comes in a psql variable,
-- so it is in no file and in no command history when read from the environment:
--
--   psql "$APP_DB_URL" -v ON_ERROR_STOP=1 -v password="$WORKER_DB_PASSWORD" -f sql/object-storage-worker-role.sql
--
-- Then: worker.database: postgres://cerberus_worker:<password, percent-encoded>@host:5432/<db>
-- Running it again sets the password anew and takes back anything granted since. The tables
-- are assumed in schema public. On PostgreSQL 14 and older every role may CREATE in public:
-- `REVOKE CREATE ON SCHEMA public FROM PUBLIC` closes that for everyone (the worker's sessions
-- are read-only in any case).

\if :{?password}
\else
  \echo 'give the password: psql -v password="$WORKER_DB_PASSWORD" -f sql/object-storage-worker-role.sql'
  \quit
\endif

SELECT format('CREATE ROLE cerberus_worker LOGIN PASSWORD %L', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cerberus_worker') \gexec

ALTER ROLE cerberus_worker WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD :'password';
-- a session of this role cannot write even where a grant would let it
ALTER ROLE cerberus_worker SET default_transaction_read_only = on;

-- nothing but what follows
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM cerberus_worker;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM cerberus_worker;
REVOKE ALL ON SCHEMA public FROM cerberus_worker;
SELECT format('REVOKE ALL ON DATABASE %I FROM cerberus_worker', current_database()) \gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO cerberus_worker', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO cerberus_worker;
GRANT SELECT ON "ObjectStorageFiles", "ObjectStorageDeleteLog" TO cerberus_worker;
