-- The database's roles and privileges (roles/database, tasks_from: roles), run by the
-- bootstrap superuser through psql on the host holding PostgreSQL, in one transaction:
--   :owner     owns the schema `public` and every table, sequence, view and function of the
--              app in it; runs the migrations (the prepare step). The only role with DDL.
--   :runtime   the serving slots: SELECT, INSERT, UPDATE, DELETE on the tables, USAGE on
--              the sequences, nothing else (no CREATE anywhere, no superuser, no pg_*
--              server-file or server-program role, no temporary tables).
-- and the extension `vector`, which only a superuser may create (migration 0003 then finds
-- it and creates nothing). Idempotent: a database set up already is left as it is, and one
-- from before these roles (the superuser owning everything) is moved to them. The passwords
-- (:owner_password, :runtime_password) come on stdin, set again on every run: the files
-- on the host are what counts. The last line printed is `changed` or `unchanged`.
\set ON_ERROR_STOP 1
-- An error shows no statement text (the ALTER ROLE lines carry the passwords).
\set VERBOSITY terse
BEGIN;
-- ALTER ... OWNER takes each table's ACCESS EXCLUSIVE lock for an instant: a serving slot's
-- long query makes the run fail (and roll back) rather than queue every request behind it.
SET LOCAL lock_timeout = '10s';
-- No NOTICE ("extension vector already exists, skipping") on every run.
SET LOCAL client_min_messages = warning;

-- Everything this script sets, without the passwords: compared at the end to say whether
-- the run changed anything (the role names reach the query through settings of this
-- transaction: psql does not interpolate its variables into a variable's text).
SELECT set_config('nica.owner', :'owner', true), set_config('nica.runtime', :'runtime', true) \g /dev/null
\set state 'SELECT md5(concat_ws(''|'', (SELECT string_agg(concat_ws('','', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls, rolreplication), '';'' ORDER BY rolname) FROM pg_roles WHERE rolname IN (current_setting(''nica.owner''), current_setting(''nica.runtime''))), (SELECT string_agg(concat_ws('','', c.relname, c.relowner::regrole, c.relacl), '';'' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = ''public''::regnamespace AND c.relkind IN (''r'', ''p'', ''v'', ''m'', ''S'', ''f'')), (SELECT concat_ws('','', nspowner::regrole, nspacl) FROM pg_namespace WHERE nspname = ''public''), (SELECT datacl::text FROM pg_database WHERE datname = current_database()), (SELECT string_agg(defaclacl::text, '';'' ORDER BY defaclobjtype) FROM pg_default_acl), (SELECT string_agg(p.proname || '','' || p.proowner::regrole, '';'' ORDER BY p.proname) FROM pg_proc p WHERE p.pronamespace = ''public''::regnamespace), (SELECT extversion FROM pg_extension WHERE extname = ''vector''))) AS '
:state before \gset

CREATE EXTENSION IF NOT EXISTS vector;

SELECT format('CREATE ROLE %I', name) FROM unnest(ARRAY[:'owner', :'runtime']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD :'owner_password';
ALTER ROLE :"runtime" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
  PASSWORD :'runtime_password';

-- The database: each role connects; nobody else but the superuser, and no temporary tables.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"owner", :"runtime";

-- The schema: the owner's; the runtime uses it and creates nothing in it.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"runtime";

-- What the superuser owned before these roles existed (every table of a host deployed
-- earlier), the app's only: an extension's own objects stay the extension's. Tables first:
-- the identity sequences and the indexes follow their table.
SELECT format('ALTER %s %s OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              c.oid::regclass, :'owner')
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND c.relowner <> :'owner'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e') \gexec
SELECT format('ALTER SEQUENCE %s OWNER TO %I', c.oid::regclass, :'owner')
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'
   AND c.relowner <> :'owner'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i')) \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'owner')
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> :'owner'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                   AND d.objid = p.oid AND d.deptype = 'e') \gexec

-- The runtime's rights on what exists, and on what a later migration creates (as the owner).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"runtime";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE ON SEQUENCES TO :"runtime";

:state after \gset
COMMIT;
SELECT CASE WHEN :'before' = :'after' THEN 'unchanged' ELSE 'changed' END;
